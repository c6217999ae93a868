import { copyFile, FileHandle, open, stat } from 'node:fs/promises';
import { ByteRange, HvrError } from './core';
import { ByteSource } from './shipping';

/** Changes are found at this granularity (a changed byte ships its 4 KiB block). */
export const CHANGE_BLOCK_BYTES = 4096;
const PASS_CHUNK_BYTES = 4 * 1024 * 1024;
const SECTOR = 512;

async function readFully(handle: FileHandle, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
    }
    return buf;
}

async function writeFully(handle: FileHandle, offset: number, data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
        const { bytesWritten } = await handle.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
    }
}

/**
 * A raw disk image and the copy of it as it was at the last barrier. `take()` is the barrier: one pass over
 * the image that brings the copy to the image's content and returns the 4 KiB blocks that changed since the
 * previous barrier (for the first barrier, against an empty disk: every block holding data). Until the next
 * barrier the copy does not change, so the logs of a cycle are read from it and a recovery point of the
 * cycle equals the copy. The image must be left at its size (a resize is refused: it needs protection again).
 *
 * Consistency: the copy is the image as the pass read it. When nothing writes the image during the pass (a
 * guest paused, or a writer that takes its writes in turns with the barrier), it is exactly one moment of the
 * image; a writer that keeps writing during the pass gets a copy in which each block is from that pass.
 */
export class ImageBarrier implements ByteSource {
    private constructor(
        readonly imagePath: string,
        readonly copyPath: string,
        readonly size: number,
        private copy: FileHandle,
    ) {}

    /**
     * Opens the image's copy at `copyPath`; `resume` keeps an existing copy (a restart continues from its last
     * barrier), otherwise the copy starts empty (all zeros, sparse).
     */
    static async open(imagePath: string, copyPath: string, options: { resume?: boolean } = {}): Promise<ImageBarrier> {
        const size = await imageSize(imagePath);
        let copy: FileHandle;
        if (options.resume) {
            copy = await open(copyPath, 'r+');
            const copySize = (await copy.stat()).size;
            if (copySize !== size) {
                await copy.close();
                throw new HvrError(
                    'CONFLICT',
                    `${imagePath} is ${size} bytes but its last barrier copy is ${copySize}: a resized image needs protection again.`,
                );
            }
        } else {
            copy = await open(copyPath, 'w+');
            await copy.truncate(size);
        }
        return new ImageBarrier(imagePath, copyPath, size, copy);
    }

    /** The barrier: brings the copy to the image, returns the changed ranges (coalesced, in disk order). */
    async take(): Promise<ByteRange[]> {
        const size = await imageSize(this.imagePath);
        if (size !== this.size) {
            throw new HvrError(
                'CONFLICT',
                `${this.imagePath} changed size from ${this.size} to ${size} bytes: a resized image needs protection again.`,
            );
        }
        const image = await open(this.imagePath, 'r');
        const changed: ByteRange[] = [];
        try {
            for (let offset = 0; offset < size; offset += PASS_CHUNK_BYTES) {
                const length = Math.min(PASS_CHUNK_BYTES, size - offset);
                const now = await readFully(image, offset, length);
                const before = await readFully(this.copy, offset, length);
                if (now.equals(before)) continue;
                for (let at = 0; at < length; at += CHANGE_BLOCK_BYTES) {
                    const end = Math.min(at + CHANGE_BLOCK_BYTES, length);
                    const block = now.subarray(at, end);
                    if (block.equals(before.subarray(at, end))) continue;
                    await writeFully(this.copy, offset + at, Buffer.from(block));
                    const last = changed[changed.length - 1];
                    if (last && last.offset + last.length === offset + at) last.length += end - at;
                    else changed.push({ offset: offset + at, length: end - at });
                }
            }
        } finally {
            await image.close();
        }
        await this.copy.datasync();
        return changed;
    }

    /** Bytes of the copy (the image as it was at the last barrier). */
    async read(offset: number, length: number): Promise<Buffer> {
        if (offset < 0 || length < 0 || offset + length > this.size) {
            throw new RangeError(`read of ${length} bytes at ${offset} is outside the ${this.size}-byte image`);
        }
        return readFully(this.copy, offset, length);
    }

    /** Keeps the copy as it is now (the cycle's barrier) at `path`. */
    async keepAs(path: string): Promise<void> {
        await copyFile(this.copyPath, path);
    }

    async close(): Promise<void> {
        await this.copy.close();
    }
}

/** An image's size; VALIDATION_FAILED unless it is whole 512-byte sectors and not empty. */
export async function imageSize(path: string): Promise<number> {
    const { size, isFile } = await stat(path).then((s) => ({ size: s.size, isFile: s.isFile() }));
    if (!isFile) throw new HvrError('VALIDATION_FAILED', `${path} is not a file.`);
    if (size === 0 || size % SECTOR !== 0) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `${path} is ${size} bytes: a raw disk image is a whole number of 512-byte sectors.`,
        );
    }
    return size;
}
