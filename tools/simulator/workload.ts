import { SeededRandom } from './random';

/** Hyper-V tracks writes in 512-byte sectors. */
export const SECTOR = 512;
/** Largest single write the workload issues. */
export const MAX_WRITE = 1024 * 1024;

/** One guest write: `length` bytes at `offset` (both multiples of 512); `zero` writes are all zeros. */
export interface GuestWrite {
    offset: number;
    length: number;
    zero: boolean;
    /** Pseudo-random content, filled when the write is applied (zero writes stay undefined). */
    data?: Buffer;
}

export type WriteKind = 'hotSpot' | 'sequential' | 'random' | 'zeroRun' | 'overwrite';

/**
 * A disk's guest I/O pattern, deterministic for its generator: a few hot spots (metadata, logs) written again
 * and again, a sequential stream (a file copy) that advances cycle after cycle, scattered writes of 512 B to
 * 1 MiB, runs of zeros (TRIM-like), and overwrites of ranges written earlier in the same cycle.
 */
export class DiskWorkload {
    private readonly hotSpots: { offset: number; length: number }[];
    private sequentialCursor: number;

    constructor(
        private readonly random: SeededRandom,
        readonly diskSize: number,
    ) {
        if (diskSize < 4 * MAX_WRITE || diskSize % SECTOR !== 0) {
            throw new RangeError(`a simulated disk needs at least 4 MiB in whole sectors; got ${diskSize} bytes`);
        }
        const spots = 4;
        this.hotSpots = Array.from({ length: spots }, () => {
            const length = alignDown(random.int(64 * 1024, 512 * 1024));
            return { offset: this.randomOffset(length), length };
        });
        this.sequentialCursor = this.randomOffset(MAX_WRITE);
    }

    private randomOffset(length: number): number {
        return alignDown(this.random.int(0, this.diskSize - length));
    }

    /** A size between 512 B and 1 MiB, biased towards small writes as real I/O is (log-uniform). */
    private writeSize(max = MAX_WRITE): number {
        const exp = 9 + this.random.float() * (Math.log2(max) - 9);
        return Math.max(SECTOR, alignDown(2 ** exp));
    }

    /** The writes of one cycle, about `churnBytes` in total (at least one write). */
    cycle(churnBytes: number): GuestWrite[] {
        const writes: GuestWrite[] = [];
        let total = 0;
        while (total < churnBytes || writes.length === 0) {
            const write = this.next(writes, churnBytes - total);
            writes.push(write);
            total += write.length;
        }
        return writes;
    }

    private next(earlier: readonly GuestWrite[], remaining: number): GuestWrite {
        const cap = Math.min(MAX_WRITE, Math.max(SECTOR, alignUp(remaining)));
        const roll = this.random.float();
        const kind: WriteKind =
            roll < 0.3
                ? 'hotSpot'
                : roll < 0.5
                  ? 'sequential'
                  : roll < 0.75
                    ? 'random'
                    : roll < 0.85
                      ? 'zeroRun'
                      : earlier.length > 0
                        ? 'overwrite'
                        : 'random';
        switch (kind) {
            case 'hotSpot': {
                const spot = this.random.pick(this.hotSpots);
                const length = Math.min(this.writeSize(Math.min(cap, spot.length)), spot.length);
                const offset = spot.offset + alignDown(this.random.int(0, spot.length - length));
                return { offset, length, zero: false };
            }
            case 'sequential': {
                const length = Math.min(cap, alignDown(this.random.int(64 * 1024, MAX_WRITE)));
                if (this.sequentialCursor + length > this.diskSize) this.sequentialCursor = 0;
                const offset = this.sequentialCursor;
                this.sequentialCursor += length;
                return { offset, length, zero: false };
            }
            case 'zeroRun': {
                const length = this.writeSize(cap);
                return { offset: this.randomOffset(length), length, zero: true };
            }
            case 'overwrite': {
                const target = this.random.pick(earlier);
                // Part of an earlier write, sometimes spilling past its end: last writer wins on the replica.
                const start = target.offset + alignDown(this.random.int(0, target.length - SECTOR));
                const length = Math.min(this.writeSize(cap), this.diskSize - start);
                return { offset: start, length, zero: false };
            }
            case 'random': {
                const length = this.writeSize(cap);
                return { offset: this.randomOffset(length), length, zero: false };
            }
        }
    }

    /**
     * What the disk holds when protection starts: a boot area at the start, then scattered extents, about a
     * quarter of the disk in all; the rest was never written (sparse).
     */
    initialExtents(): { offset: number; length: number }[] {
        const extents: { offset: number; length: number }[] = [];
        const boot = alignDown(Math.min(this.diskSize / 8, 8 * MAX_WRITE));
        extents.push({ offset: 0, length: boot });
        let filled = boot;
        while (filled < this.diskSize / 4) {
            const length = alignDown(this.random.int(4096, 2 * MAX_WRITE));
            extents.push({ offset: this.randomOffset(length), length });
            filled += length;
        }
        return extents;
    }
}

export function alignDown(n: number): number {
    return Math.floor(n / SECTOR) * SECTOR;
}

export function alignUp(n: number): number {
    return Math.ceil(n / SECTOR) * SECTOR;
}
