import { HvrError } from '../errors';

/** Azure page blobs are written in 512-byte pages. */
export const PAGE_BYTES = 512;
/** Azure's limit for one Put Page call (Azurite accepts more; we never send more). */
export const MAX_PUT_PAGE_BYTES = 4 * 1024 * 1024;

/** One write recorded in a log, as the planner needs it: where it goes on disk and where its data sits in the log. */
export interface LogWrite {
    diskOffset: number;
    length: number;
    logOffset: number;
    /** The write's data is known to be all zero (from its data checksum) without reading it. */
    zero?: boolean;
}

/** A piece of the disk after last-writer-wins: these bytes come from this place in the log (or are zero). */
export interface ResolvedExtent {
    diskOffset: number;
    length: number;
    logOffset: number;
    zero: boolean;
}

/** Where the bytes of one part of a Put Page come from in the log. */
export interface LogPiece {
    logOffset: number;
    length: number;
}

/** One call to the page blob: Put Page with data assembled from `pieces` (in order), or Clear Pages. */
export type PageWrite =
    | { kind: 'put'; diskOffset: number; length: number; pieces: LogPiece[] }
    | { kind: 'clear'; diskOffset: number; length: number };

/** Max-heap of write indexes: the newest write covering the sweep position wins. */
class NewestFirst {
    private readonly items: number[] = [];
    get size(): number {
        return this.items.length;
    }
    peek(): number | undefined {
        return this.items[0];
    }
    push(value: number): void {
        const a = this.items;
        a.push(value);
        let i = a.length - 1;
        while (i > 0) {
            const parent = (i - 1) >> 1;
            if (a[parent]! >= a[i]!) break;
            [a[parent], a[i]] = [a[i]!, a[parent]!];
            i = parent;
        }
    }
    pop(): void {
        const a = this.items;
        const last = a.pop();
        if (a.length === 0 || last === undefined) return;
        a[0] = last;
        let i = 0;
        for (;;) {
            const l = 2 * i + 1;
            const r = l + 1;
            let top = i;
            if (l < a.length && a[l]! > a[top]!) top = l;
            if (r < a.length && a[r]! > a[top]!) top = r;
            if (top === i) break;
            [a[top], a[i]] = [a[i]!, a[top]!];
            i = top;
        }
    }
}

function assertPageAligned(write: LogWrite, index: number): void {
    if (write.diskOffset % PAGE_BYTES !== 0 || write.length % PAGE_BYTES !== 0) {
        throw new HvrError(
            'HRL_ENTRY_FIELD',
            `Log entry ${index} writes ${write.length} bytes at disk offset ${write.diskOffset}: ` +
                `a replica page blob takes only whole 512-byte sectors.`,
            { index, diskOffset: write.diskOffset, length: write.length },
        );
    }
}

/**
 * Resolves a log's writes, applied in order, into the disk ranges each one still owns at the end:
 * a later write wins where writes overlap. The result is sorted by disk offset, non-overlapping, and
 * neighbours that continue the same write are merged. A sweep over the write boundaries with a heap of
 * the writes covering the current position: O(n log n) whatever the overlap.
 */
export function resolveLastWriterWins(writes: readonly LogWrite[]): ResolvedExtent[] {
    const live: number[] = [];
    writes.forEach((w, i) => {
        assertPageAligned(w, i);
        if (w.length > 0) live.push(i);
    });
    const byStart = live.slice().sort((a, b) => writes[a]!.diskOffset - writes[b]!.diskOffset || a - b);
    const boundaries = new Float64Array(live.length * 2);
    live.forEach((i, k) => {
        const w = writes[i]!;
        boundaries[2 * k] = w.diskOffset;
        boundaries[2 * k + 1] = w.diskOffset + w.length;
    });
    boundaries.sort();

    const out: ResolvedExtent[] = [];
    const heap = new NewestFirst();
    let next = 0;
    for (let b = 0; b < boundaries.length; b++) {
        const x = boundaries[b]!;
        if (b > 0 && boundaries[b - 1] === x) continue;
        while (next < byStart.length && writes[byStart[next]!]!.diskOffset === x) heap.push(byStart[next++]!);
        while (heap.size > 0) {
            const top = writes[heap.peek()!]!;
            if (top.diskOffset + top.length > x) break;
            heap.pop();
        }
        const winnerIndex = heap.peek();
        if (winnerIndex === undefined) continue;
        let end = x;
        for (let c = b + 1; c < boundaries.length; c++) {
            if (boundaries[c]! > x) {
                end = boundaries[c]!;
                break;
            }
        }
        const winner = writes[winnerIndex]!;
        const extent: ResolvedExtent = {
            diskOffset: x,
            length: end - x,
            logOffset: winner.logOffset + (x - winner.diskOffset),
            zero: winner.zero === true,
        };
        const prev = out[out.length - 1];
        if (
            prev &&
            prev.diskOffset + prev.length === extent.diskOffset &&
            prev.logOffset + prev.length === extent.logOffset &&
            prev.zero === extent.zero
        ) {
            prev.length += extent.length;
        } else {
            out.push(extent);
        }
    }
    return out;
}

/**
 * Turns resolved extents into the fewest page blob calls: disk-adjacent extents coalesce into one Put Page
 * (their data may come from different places in the log) of at most `maxPutBytes`; extents known to be zero
 * coalesce into Clear Pages of any size. Because extents do not overlap, the calls can run in any order.
 */
export function planPageWrites(
    extents: readonly ResolvedExtent[],
    maxPutBytes: number = MAX_PUT_PAGE_BYTES,
): PageWrite[] {
    if (maxPutBytes <= 0 || maxPutBytes % PAGE_BYTES !== 0 || maxPutBytes > MAX_PUT_PAGE_BYTES) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `A Put Page size of ${maxPutBytes} bytes is not a multiple of 512 ≤ 4 MiB.`,
        );
    }
    const out: PageWrite[] = [];
    let put: Extract<PageWrite, { kind: 'put' }> | undefined;
    let clear: Extract<PageWrite, { kind: 'clear' }> | undefined;
    for (const e of extents) {
        if (e.zero) {
            put = undefined;
            if (clear && clear.diskOffset + clear.length === e.diskOffset) {
                clear.length += e.length;
            } else {
                clear = { kind: 'clear', diskOffset: e.diskOffset, length: e.length };
                out.push(clear);
            }
            continue;
        }
        clear = undefined;
        if (put && put.diskOffset + put.length !== e.diskOffset) put = undefined;
        let done = 0;
        while (done < e.length) {
            if (!put || put.length === maxPutBytes) {
                put = { kind: 'put', diskOffset: e.diskOffset + done, length: 0, pieces: [] };
                out.push(put);
            }
            const take = Math.min(e.length - done, maxPutBytes - put.length);
            const last = put.pieces[put.pieces.length - 1];
            if (last && last.logOffset + last.length === e.logOffset + done) {
                last.length += take;
            } else {
                put.pieces.push({ logOffset: e.logOffset + done, length: take });
            }
            put.length += take;
            done += take;
        }
    }
    return out;
}

/**
 * The fewest Put Page calls any merge could make for these extents: every maximal run of disk-adjacent
 * non-zero extents needs ceil(run / 4 MiB) calls. The benchmark compares the merge's count with this.
 */
export function minimumPutPageCalls(extents: readonly ResolvedExtent[], maxPutBytes = MAX_PUT_PAGE_BYTES): number {
    let calls = 0;
    let runEnd = -1;
    let runLength = 0;
    for (const e of extents) {
        if (e.zero) {
            calls += Math.ceil(runLength / maxPutBytes);
            runLength = 0;
            runEnd = -1;
            continue;
        }
        if (e.diskOffset !== runEnd) {
            calls += Math.ceil(runLength / maxPutBytes);
            runLength = 0;
        }
        runLength += e.length;
        runEnd = e.diskOffset + e.length;
    }
    return calls + Math.ceil(runLength / maxPutBytes);
}

/** A set of Put Pages whose log data is fetched together, with the log ranges to read for it. */
export interface ReadGroup {
    writes: Extract<PageWrite, { kind: 'put' }>[];
    /** Log ranges to read, sorted, non-overlapping; every piece of every write lies inside one of them. */
    reads: LogPiece[];
    /** Bytes held in memory while the group is in flight. */
    bytes: number;
}

export interface ReadGroupOptions {
    /** A group closes once its writes need this many bytes (default 8 MiB: reads are at least this large). */
    targetBytes?: number;
    /** Needed log ranges closer than this are read as one range, the gap included (default 256 KiB). */
    mergeGapBytes?: number;
}

/**
 * Groups Put Pages by where their data sits in the log, so the log is read forward with large ranged reads
 * of only the bytes still needed (data that a later write overwrote is skipped when the gap is large).
 * Memory per group is bounded: about `targetBytes` + one Put Page + gaps.
 */
export function planReadGroups(writes: readonly PageWrite[], options: ReadGroupOptions = {}): ReadGroup[] {
    const target = options.targetBytes ?? 8 * 1024 * 1024;
    const gap = options.mergeGapBytes ?? 256 * 1024;
    const puts = writes
        .filter((w): w is Extract<PageWrite, { kind: 'put' }> => w.kind === 'put')
        .map((w) => ({ w, first: Math.min(...w.pieces.map((p) => p.logOffset)) }))
        .sort((a, b) => a.first - b.first);
    const groups: ReadGroup[] = [];
    let current: Extract<PageWrite, { kind: 'put' }>[] = [];
    let needed = 0;
    const close = (): void => {
        if (current.length === 0) return;
        const pieces = current.flatMap((w) => w.pieces).sort((a, b) => a.logOffset - b.logOffset);
        const reads: LogPiece[] = [];
        for (const p of pieces) {
            const last = reads[reads.length - 1];
            if (last && p.logOffset <= last.logOffset + last.length + gap) {
                last.length = Math.max(last.length, p.logOffset + p.length - last.logOffset);
            } else {
                reads.push({ logOffset: p.logOffset, length: p.length });
            }
        }
        groups.push({ writes: current, reads, bytes: reads.reduce((s, r) => s + r.length, 0) });
        current = [];
        needed = 0;
    };
    for (const { w } of puts) {
        current.push(w);
        needed += w.length;
        if (needed >= target) close();
    }
    close();
    return groups;
}

/** Copies a Put Page's pieces out of its group's read buffers into one buffer of the write's length. */
export function assemblePut(
    write: Extract<PageWrite, { kind: 'put' }>,
    reads: readonly LogPiece[],
    buffers: readonly Buffer[],
): Buffer {
    if (write.pieces.length === 1) {
        const only = write.pieces[0]!;
        const k = findRead(reads, only.logOffset);
        const start = only.logOffset - reads[k]!.logOffset;
        return buffers[k]!.subarray(start, start + only.length);
    }
    const out = Buffer.allocUnsafe(write.length);
    let at = 0;
    for (const p of write.pieces) {
        const k = findRead(reads, p.logOffset);
        const start = p.logOffset - reads[k]!.logOffset;
        buffers[k]!.copy(out, at, start, start + p.length);
        at += p.length;
    }
    return out;
}

function findRead(reads: readonly LogPiece[], logOffset: number): number {
    let lo = 0;
    let hi = reads.length - 1;
    while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (reads[mid]!.logOffset <= logOffset) lo = mid;
        else hi = mid - 1;
    }
    const r = reads[lo];
    if (!r || logOffset < r.logOffset || logOffset >= r.logOffset + r.length) {
        throw new HvrError('INTERNAL', `No planned read covers log offset ${logOffset}.`);
    }
    return lo;
}
