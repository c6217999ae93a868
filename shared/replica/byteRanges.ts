import { HvrError } from '../errors';

/** A half-open disk range [offset, offset + length). */
export interface ByteRange {
    offset: number;
    length: number;
}

/** Sorted, non-overlapping, non-adjacent ranges: the union of what was written. */
export type RangeSet = ByteRange[];

/** The union of `ranges` (any order, overlaps allowed) as a sorted, coalesced set. */
export function unionRanges(...sets: readonly (readonly ByteRange[])[]): RangeSet {
    const all = sets.flat().filter((r) => r.length > 0);
    all.sort((a, b) => a.offset - b.offset);
    const out: RangeSet = [];
    for (const r of all) {
        const last = out[out.length - 1];
        if (last && r.offset <= last.offset + last.length) {
            last.length = Math.max(last.length, r.offset + r.length - last.offset);
        } else {
            out.push({ offset: r.offset, length: r.length });
        }
    }
    return out;
}

export function rangeBytes(set: readonly ByteRange[]): number {
    let n = 0;
    for (const r of set) n += r.length;
    return n;
}

/** Widens each range to whole granules (what the encoding can name), then coalesces. */
export function coarsen(set: readonly ByteRange[], granule: number): RangeSet {
    return unionRanges(
        set.map((r) => {
            const start = Math.floor(r.offset / granule) * granule;
            const end = Math.ceil((r.offset + r.length) / granule) * granule;
            return { offset: start, length: end - start };
        }),
    );
}

/** Azure bills page blobs by 512-byte page: the smallest granule. */
export const PAGE_BYTES = 512;

function pushVarint(out: number[], value: number): void {
    let v = value;
    while (v >= 0x80) {
        out.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
    }
    out.push(v);
}

/**
 * A range set in a table property: `g<granule>:` then base64 of LEB128 varints (gap, length) in granules. A set
 * too large for `maxChars` is widened to coarser granules (×4 each time) until it fits, so the stored set always
 * covers what was written (an upper bound once widened; exact at 512 B).
 */
export function encodeRanges(set: readonly ByteRange[], maxChars = 16_000): string {
    for (let granule = PAGE_BYTES; ; granule *= 4) {
        const coarse = coarsen(set, granule);
        const bytes: number[] = [];
        let cursor = 0;
        for (const r of coarse) {
            pushVarint(bytes, (r.offset - cursor) / granule);
            pushVarint(bytes, r.length / granule);
            cursor = r.offset + r.length;
        }
        const text = `g${granule}:${Buffer.from(bytes).toString('base64')}`;
        if (text.length <= maxChars || coarse.length <= 1) return text;
    }
}

export function decodeRanges(text: string | undefined): RangeSet {
    if (text === undefined || text === '') return [];
    const match = /^g(\d+):([A-Za-z0-9+/=]*)$/.exec(text);
    if (!match)
        throw new HvrError('VALIDATION_FAILED', `Not an encoded range set: ${JSON.stringify(text.slice(0, 40))}.`);
    const granule = Number(match[1]);
    const bytes = Buffer.from(match[2]!, 'base64');
    const values: number[] = [];
    let value = 0;
    let scale = 1;
    for (const b of bytes) {
        value += (b & 0x7f) * scale;
        if (b & 0x80) {
            scale *= 0x80;
        } else {
            values.push(value);
            value = 0;
            scale = 1;
        }
    }
    const out: RangeSet = [];
    let cursor = 0;
    for (let i = 0; i + 1 < values.length; i += 2) {
        const offset = cursor + values[i]! * granule;
        const length = values[i + 1]! * granule;
        out.push({ offset, length });
        cursor = offset + length;
    }
    return out;
}
