import { open } from 'node:fs/promises';
import { HvrError } from '../errors';

/**
 * Random access to the bytes of a log, wherever they live (memory, a file, a blob).
 * `read` returns exactly `length` bytes or throws: a short read is an error, never a silent partial answer.
 */
export interface ByteSource {
    readonly size: number;
    read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

/** Checks a read request against the source size; sources call it before touching anything. */
export function checkReadRange(size: number, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
        throw new RangeError(`invalid read range offset=${offset} length=${length}`);
    }
    if (offset + length > size) {
        throw new HvrError(
            'HRL_TRUNCATED',
            `read of ${length} bytes at offset ${offset} runs past the end of the source (${size} bytes)`,
            { offset, length, size },
        );
    }
}

/** A source over bytes already in memory. Reads return views, not copies. */
export function bufferSource(buf: Buffer): ByteSource {
    return {
        size: buf.length,
        read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
            signal?.throwIfAborted();
            checkReadRange(buf.length, offset, length);
            return Promise.resolve(buf.subarray(offset, offset + length));
        },
    };
}

/** A source over a local file, with positional reads; the caller closes it. */
export async function openFileSource(path: string): Promise<ByteSource & { close(): Promise<void> }> {
    const handle = await open(path, 'r');
    let size: number;
    try {
        size = (await handle.stat()).size;
    } catch (err) {
        await handle.close();
        throw err;
    }
    return {
        size,
        async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
            signal?.throwIfAborted();
            checkReadRange(size, offset, length);
            const out = Buffer.allocUnsafe(length);
            let done = 0;
            while (done < length) {
                const { bytesRead } = await handle.read(out, done, length - done, offset + done);
                if (bytesRead === 0) {
                    throw new HvrError(
                        'HRL_TRUNCATED',
                        `file ${path} ended at offset ${offset + done} while reading ${length} bytes at ${offset}`,
                        { offset: offset + done },
                    );
                }
                done += bytesRead;
                signal?.throwIfAborted();
            }
            return out;
        },
        close: () => handle.close(),
    };
}
