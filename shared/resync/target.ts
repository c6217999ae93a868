import { PageBlobClient } from '@azure/storage-blob';
import { deadline } from '../storage/deadline';
import { ByteRange } from './digest';

/** Azure's Get Page Ranges answers slowly on fragmented blobs; ask about this much of the disk per call. */
const PAGE_RANGES_SLICE = 4 * 1024 ** 3;

/** Reads of the replica, counted: what the cloud side's resync cost in bytes and calls. */
export interface ReplicaReadCounters {
    bytesRead: number;
    reads: number;
    pageRangeCalls: number;
}

export function newReadCounters(): ReplicaReadCounters {
    return { bytesRead: 0, reads: 0, pageRangeCalls: 0 };
}

/** Sorts and merges byte ranges that overlap or touch (and those closer than `gap` bytes). */
export function mergeByteRanges(ranges: Iterable<ByteRange>, gap = 0): ByteRange[] {
    const sorted = [...ranges].filter((r) => r.length > 0).sort((a, b) => a.offset - b.offset);
    const out: ByteRange[] = [];
    for (const r of sorted) {
        const last = out[out.length - 1];
        if (last && r.offset <= last.offset + last.length + gap) {
            last.length = Math.max(last.length, r.offset + r.length - last.offset);
        } else {
            out.push({ offset: r.offset, length: r.length });
        }
    }
    return out;
}

/** The parts of `ranges` inside `within` (both sorted and merged). */
export function intersectByteRanges(ranges: readonly ByteRange[], within: readonly ByteRange[]): ByteRange[] {
    const out: ByteRange[] = [];
    let j = 0;
    for (const r of ranges) {
        const end = r.offset + r.length;
        while (j < within.length && within[j]!.offset + within[j]!.length <= r.offset) j++;
        for (let k = j; k < within.length && within[k]!.offset < end; k++) {
            const w = within[k]!;
            const start = Math.max(r.offset, w.offset);
            const stop = Math.min(end, w.offset + w.length);
            if (stop > start) out.push({ offset: start, length: stop - start });
        }
    }
    return out;
}

interface PageRangeShape {
    offset?: number;
    count?: number;
    start?: number;
    end?: number;
}

/**
 * The written ranges of the first `size` bytes of a page blob, merged (Azurite returns adjacent ranges
 * separately). Everything else was never written, or was cleared, and reads as zeros without being read.
 */
export async function writtenRanges(
    blob: PageBlobClient,
    size: number,
    counters?: ReplicaReadCounters,
    signal?: AbortSignal,
): Promise<ByteRange[]> {
    const found: ByteRange[] = [];
    for (let offset = 0; offset < size; offset += PAGE_RANGES_SLICE) {
        const count = Math.min(PAGE_RANGES_SLICE, size - offset);
        const response = await blob.getPageRanges(offset, count, { abortSignal: deadline(undefined, signal) });
        if (counters) counters.pageRangeCalls++;
        // getPageRanges maps the service's inclusive {start, end} to {offset, count: end - start} (one short of
        // the length); accept either shape.
        const ranges = (response.pageRange ?? []) as readonly PageRangeShape[];
        for (const r of ranges) {
            const [first, last] = r.offset !== undefined ? [r.offset, r.offset + (r.count ?? 0)] : [r.start!, r.end!];
            const start = Math.max(first, offset);
            const end = Math.min(last + 1, offset + count);
            if (end > start) found.push({ offset: start, length: end - start });
        }
    }
    return mergeByteRanges(found);
}

export interface ReadExtentsOptions {
    /** Largest single ranged read; 8 MiB by default (reads above 4 MiB are fine for GET, unlike Put Page). */
    maxReadBytes?: number;
    /** Reads in flight; 8 by default. */
    concurrency?: number;
    counters?: ReplicaReadCounters;
    signal?: AbortSignal;
}

/**
 * Reads `extents` of a page blob with large ranged GETs, several in flight, each bounded by a deadline, and
 * hands each piece to `consume` (in completion order) with its disk offset.
 */
export async function readExtents(
    blob: PageBlobClient,
    extents: readonly ByteRange[],
    consume: (offset: number, data: Buffer) => void | Promise<void>,
    options: ReadExtentsOptions = {},
): Promise<void> {
    const max = options.maxReadBytes ?? 8 * 1024 * 1024;
    const pieces: ByteRange[] = [];
    for (const e of extents) {
        for (let o = e.offset; o < e.offset + e.length; o += max) {
            pieces.push({ offset: o, length: Math.min(max, e.offset + e.length - o) });
        }
    }
    let next = 0;
    const worker = async (): Promise<void> => {
        while (next < pieces.length) {
            const piece = pieces[next++]!;
            const data = Buffer.allocUnsafe(piece.length);
            await blob.downloadToBuffer(data, piece.offset, piece.length, {
                abortSignal: deadline(undefined, options.signal),
                concurrency: 1,
            });
            if (options.counters) {
                options.counters.bytesRead += piece.length;
                options.counters.reads++;
            }
            await consume(piece.offset, data);
        }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 8, pieces.length) }, () => worker()));
}
