import { FileHandle, open } from 'node:fs/promises';
import { ByteRange } from '../../shared/resync/digest';

/** Granularity of the scan for data during initial replication. */
const SCAN_BLOCK = 64 * 1024;
const SCAN_CHUNK = 8 * 1024 * 1024;

/**
 * A VM's virtual disk on the simulated Hyper-V host: a sparse raw file of `size` bytes. Writes land at their
 * offsets; never-written ranges stay holes and read as zeros.
 */
export class SourceDisk {
    private constructor(
        readonly path: string,
        readonly size: number,
        private readonly handle: FileHandle,
    ) {}

    /** Creates (or truncates) the file at `size` bytes, all holes. */
    static async create(path: string, size: number): Promise<SourceDisk> {
        const handle = await open(path, 'w+');
        await handle.truncate(size);
        return new SourceDisk(path, size, handle);
    }

    async write(offset: number, data: Buffer): Promise<void> {
        if (offset < 0 || offset + data.length > this.size) {
            throw new RangeError(`write of ${data.length} bytes at ${offset} is outside the ${this.size}-byte disk`);
        }
        let done = 0;
        while (done < data.length) {
            const { bytesWritten } = await this.handle.write(data, done, data.length - done, offset + done);
            done += bytesWritten;
        }
    }

    /** Exactly `length` bytes at `offset` (the ByteSource shape shared/resync's comparison reads). */
    async read(offset: number, length: number): Promise<Buffer> {
        if (offset < 0 || length < 0 || offset + length > this.size) {
            throw new RangeError(`read of ${length} bytes at ${offset} is outside the ${this.size}-byte disk`);
        }
        const buf = Buffer.alloc(length);
        let done = 0;
        while (done < length) {
            const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done);
            if (bytesRead === 0) break;
            done += bytesRead;
        }
        return buf;
    }

    /** The ranges holding any non-zero byte, at 64 KiB granularity, coalesced: what initial replication ships. */
    async dataRanges(): Promise<ByteRange[]> {
        const out: ByteRange[] = [];
        for (let offset = 0; offset < this.size; offset += SCAN_CHUNK) {
            const chunk = await this.read(offset, Math.min(SCAN_CHUNK, this.size - offset));
            for (let at = 0; at < chunk.length; at += SCAN_BLOCK) {
                const block = chunk.subarray(at, Math.min(at + SCAN_BLOCK, chunk.length));
                if (isZero(block)) continue;
                const last = out[out.length - 1];
                if (last && last.offset + last.length === offset + at) last.length += block.length;
                else out.push({ offset: offset + at, length: block.length });
            }
        }
        return out;
    }

    private closed = false;

    /** Flushes and closes the file; later calls do nothing. */
    async close(): Promise<void> {
        if (this.closed) return;
        this.closed = true;
        await this.handle.sync();
        await this.handle.close();
    }
}

export function isZero(buf: Uint8Array): boolean {
    for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
    return true;
}
