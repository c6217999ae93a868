import { randomFillSync } from 'node:crypto';
import { FileHandle, open } from 'node:fs/promises';
import type { ByteRange } from '../../shared/resync/digest';
import type { ByteSource } from '../../packages/provider-kit/src';
import { SeededRandom } from '../../tools/simulator/random';

/** The guest's write granularity and the change tracking's block: 4 KiB. */
export const BLOCK = 4096;
const MAX_WRITE_BLOCKS = 16;
/** How far from the hot spot a local write lands, in blocks (±2 MiB). */
const HOT_SPAN_BLOCKS = 512;

/** Runs one task at a time, in call order. */
class Serial {
    private tail: Promise<unknown> = Promise.resolve();
    run<T>(task: () => Promise<T>): Promise<T> {
        const result = this.tail.then(task);
        this.tail = result.catch(() => undefined);
        return result;
    }
}

/**
 * A guest disk written at a steady rate, as a sparse raw file, with the change tracking a Hyper-V host keeps: the
 * 4 KiB blocks written since the last cycle. `capture()` is the cycle's consistent point: it freezes the changed
 * blocks; a guest write into a frozen block not yet shipped first keeps the block's old content (copy on write),
 * so the cycle's logs read exactly the disk at capture (`read`) while the guest keeps writing.
 */
export class PacedDisk implements ByteSource {
    private dirty = new Set<number>();
    private frozen: { blocks: Set<number>; kept: Map<number, Buffer> } | undefined;
    private readonly serial = new Serial();
    private hot: number;
    private last = 0;
    private readonly blocks: number;
    /** Bytes the guest wrote, and how many writes. */
    writtenBytes = 0;
    writes = 0;
    /** Blocks kept by copy on write (a write into a frozen block while its cycle shipped). */
    keptBlocks = 0;

    private constructor(
        readonly diskId: string,
        readonly size: number,
        private readonly file: FileHandle,
        private readonly random: SeededRandom,
    ) {
        this.blocks = Math.floor(size / BLOCK);
        this.hot = random.int(0, this.blocks - 1);
    }

    static async create(diskId: string, path: string, size: number, random: SeededRandom): Promise<PacedDisk> {
        const file = await open(path, 'w+');
        await file.truncate(size);
        return new PacedDisk(diskId, size, file, random);
    }

    /**
     * Writes about `bytes` as guest writes of 4–64 KiB at 4 KiB boundaries: most near a hot spot that moves now
     * and then, some continuing the previous write (a sequential stream), the rest anywhere on the disk.
     * Returns the bytes written (the last write may end past `bytes`).
     */
    write(bytes: number): Promise<number> {
        return this.serial.run(async () => {
            let done = 0;
            while (done < bytes) {
                const count = this.random.int(1, MAX_WRITE_BLOCKS);
                const kind = this.random.float();
                if (this.random.chance(0.01)) this.hot = this.random.int(0, this.blocks - 1);
                let first: number;
                if (kind < 0.6) first = this.hot + this.random.int(-HOT_SPAN_BLOCKS, HOT_SPAN_BLOCKS);
                else if (kind < 0.85) first = this.last;
                else first = this.random.int(0, this.blocks - 1);
                first = Math.min(Math.max(0, first), this.blocks - count);
                await this.writeBlocks(first, count);
                this.last = first + count;
                done += count * BLOCK;
            }
            return done;
        });
    }

    private async writeBlocks(first: number, count: number): Promise<void> {
        const frozen = this.frozen;
        if (frozen) {
            for (let b = first; b < first + count; b++) {
                if (frozen.blocks.has(b) && !frozen.kept.has(b)) {
                    frozen.kept.set(b, await this.readFile(b * BLOCK, BLOCK));
                    this.keptBlocks++;
                }
            }
        }
        const data = randomFillSync(Buffer.allocUnsafe(count * BLOCK));
        await this.file.write(data, 0, data.length, first * BLOCK);
        for (let b = first; b < first + count; b++) this.dirty.add(b);
        this.writtenBytes += data.length;
        this.writes++;
    }

    private async readFile(offset: number, length: number): Promise<Buffer> {
        const buf = Buffer.alloc(length);
        let at = 0;
        while (at < length) {
            const { bytesRead } = await this.file.read(buf, at, length - at, offset + at);
            if (bytesRead === 0) break;
            at += bytesRead;
        }
        return buf;
    }

    /**
     * The cycle's point: the blocks changed since the previous capture, as ranges in disk order, frozen until
     * `release()`. Only one capture at a time.
     */
    capture(): Promise<ByteRange[]> {
        return this.serial.run(async () => {
            if (this.frozen) throw new Error(`${this.diskId}: the previous capture was not released`);
            const blocks = this.dirty;
            this.dirty = new Set();
            this.frozen = { blocks, kept: new Map() };
            return blockRanges(blocks, this.size);
        });
    }

    /** Reads the disk as it was at the last capture (frozen blocks as kept), the current disk elsewhere. */
    read(offset: number, length: number): Promise<Buffer> {
        return this.serial.run(async () => {
            const buf = await this.readFile(offset, length);
            const kept = this.frozen?.kept;
            if (kept && kept.size > 0) {
                for (let b = Math.floor(offset / BLOCK); b * BLOCK < offset + length; b++) {
                    const old = kept.get(b);
                    if (!old) continue;
                    const from = Math.max(offset, b * BLOCK);
                    const to = Math.min(offset + length, (b + 1) * BLOCK);
                    old.copy(buf, from - offset, from - b * BLOCK, to - b * BLOCK);
                }
            }
            return buf;
        });
    }

    /** The cycle's logs are up: drop the frozen blocks' kept content. */
    release(): Promise<void> {
        return this.serial.run(async () => {
            this.frozen = undefined;
        });
    }

    /** The whole disk now (for the final comparison, after the guest stopped). */
    contentAt(offset: number, length: number): Promise<Buffer> {
        return this.serial.run(() => this.readFile(offset, length));
    }

    close(): Promise<void> {
        return this.serial.run(() => this.file.close());
    }
}

/** Sorted block numbers as merged byte ranges, clipped to the disk. */
export function blockRanges(blocks: Iterable<number>, size: number): ByteRange[] {
    const sorted = [...blocks].sort((a, b) => a - b);
    const ranges: ByteRange[] = [];
    for (const b of sorted) {
        const offset = b * BLOCK;
        const length = Math.min(BLOCK, size - offset);
        if (length <= 0) continue;
        const prev = ranges[ranges.length - 1];
        if (prev && prev.offset + prev.length === offset) prev.length += length;
        else ranges.push({ offset, length });
    }
    return ranges;
}
