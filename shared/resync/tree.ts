import { DIGEST_BYTES, Digester, NodeRange, nodeBytes, nodeCountAt } from './digest';
import { encodeManifest } from './manifest';
import { ByteSource } from './provider';

/**
 * A whole digest tree in memory: `levels[k]` holds every node digest of level k. For small disks, tests and the
 * benchmark's reference; the cloud keeps its tree in the digest index instead.
 */
export async function digestTreeOf(
    source: ByteSource,
    digester: Digester,
    signal?: AbortSignal,
): Promise<Uint8Array[]> {
    const g = digester.geometry;
    const levels = Array.from({ length: g.levels }, (_, k) => new Uint8Array(nodeCountAt(g, k) * DIGEST_BYTES));
    for (let top = 0; top < nodeCountAt(g, 0); top++) {
        const span = nodeBytes(g, 0, top);
        const sub = digester.subtree(top, await source.read(span.offset, span.length, signal));
        for (let k = 0; k < g.levels; k++) levels[k]!.set(sub[k]!, top * g.fanout ** k * DIGEST_BYTES);
    }
    return levels;
}

/** The digests of `ranges` of `level`, gathered in order from a full tree. */
export function gatherDigests(levels: readonly Uint8Array[], level: number, ranges: readonly NodeRange[]): Uint8Array {
    const count = ranges.reduce((n, r) => n + r.count, 0);
    const out = new Uint8Array(count * DIGEST_BYTES);
    let at = 0;
    for (const r of ranges) {
        out.set(levels[level]!.subarray(r.first * DIGEST_BYTES, (r.first + r.count) * DIGEST_BYTES), at);
        at += r.count * DIGEST_BYTES;
    }
    return out;
}

/** A manifest for `ranges` of `level` from a full tree (zero nodes flagged, not listed). */
export function manifestFromTree(
    levels: readonly Uint8Array[],
    digester: Digester,
    level: number,
    round: number,
    ranges: NodeRange[],
): Promise<Buffer> {
    return encodeManifest(
        { geometry: digester.geometry, seed: digester.seed, level, round, ranges },
        gatherDigests(levels, level, ranges),
        digester,
    );
}

/** The root digest of a tree: XXH3-128 of all coarsest-level digests. */
export function rootDigestOf(levels: readonly Uint8Array[], digester: Digester): Buffer {
    const out = Buffer.alloc(DIGEST_BYTES);
    digester.hashInto(levels[0]!, out, 0);
    return out;
}
