import { HvrError } from '../errors';
import {
    ByteRange,
    childrenOf,
    coalesceNodeRanges,
    DIGEST_BYTES,
    Digester,
    DigestGeometry,
    nodeBytes,
    nodeCountAt,
    NodeRange,
} from '../resync/digest';
import { DigestRequest, encodeManifest, forEachManifestNode, parseManifest } from '../resync/manifest';
import { ByteSource } from '../resync/provider';

/**
 * The failback comparison: the resync digest tree (shared/resync) run in the other direction. The provider holds
 * the disk to bring level (on premises) and describes it with manifests; the cloud holds the disk that is right
 * (the Azure VM's) and compares. Unlike the provider's `ProviderComparison`, which keeps its state in memory
 * between rounds, each round here is one stateless call: an activity reads one manifest, digests the same nodes of
 * the Azure disk, and returns the nodes to ask about next and the leaves found to differ. The orchestration keeps
 * the round and the request; the differing leaves of each round go to a blob (the caller's choice).
 */

/** Bytes read from a source in one call when digesting consecutive nodes. */
const READ_BYTES = 8 * 1024 * 1024;

function manifestError(message: string): HvrError {
    return new HvrError('RESYNC_MANIFEST_INVALID', `failback comparison: ${message}`);
}

/**
 * The digests of `ranges` of `level` of a disk, computed from its bytes: one 16-byte slot per node, in order.
 * Consecutive nodes are read together (up to 8 MiB per read). Used by both sides: the provider for the manifests
 * it uploads, the cloud for the Azure disk. `leaves` receives the leaf digests of every node read, when given.
 */
export async function digestNodes(
    source: ByteSource,
    digester: Digester,
    level: number,
    ranges: readonly NodeRange[],
    options: { signal?: AbortSignal; onLeaves?: (node: number, leaves: Uint8Array) => void } = {},
): Promise<{ digests: Uint8Array; bytesRead: number }> {
    const g = digester.geometry;
    const count = ranges.reduce((n, r) => n + r.count, 0);
    const out = new Uint8Array(count * DIGEST_BYTES);
    const nodeSize = nodeBytes(g, level, 0).length;
    const perRead = Math.max(1, Math.floor(READ_BYTES / nodeSize));
    const leafLevel = g.levels - 1;
    let at = 0;
    let bytesRead = 0;
    for (const r of ranges) {
        for (let first = r.first; first < r.first + r.count; first += perRead) {
            const n = Math.min(perRead, r.first + r.count - first);
            const start = nodeBytes(g, level, first).offset;
            const last = nodeBytes(g, level, first + n - 1);
            const data = await source.read(start, last.offset + last.length - start, options.signal);
            bytesRead += data.length;
            for (let i = 0; i < n; i++) {
                const span = nodeBytes(g, level, first + i);
                const bytes = data.subarray(span.offset - start, span.offset - start + span.length);
                const leafCount = Math.ceil(bytes.length / g.leafSize);
                let digests: Uint8Array = new Uint8Array(leafCount * DIGEST_BYTES);
                for (let l = 0; l < leafCount; l++) {
                    digester.leafInto(bytes.subarray(l * g.leafSize, (l + 1) * g.leafSize), digests, l * DIGEST_BYTES);
                }
                options.onLeaves?.(first + i, digests);
                for (let k = leafLevel; k > level; k--) digests = digester.parents(digests);
                out.set(digests.subarray(0, DIGEST_BYTES), at);
                at += DIGEST_BYTES;
            }
        }
    }
    return { digests: out, bytesRead };
}

/** A manifest of `ranges` of `level` of a disk (the provider's upload for one round). */
export async function manifestOfDisk(
    source: ByteSource,
    digester: Digester,
    level: number,
    round: number,
    ranges: NodeRange[],
    signal?: AbortSignal,
): Promise<Buffer> {
    const { digests } = await digestNodes(source, digester, level, ranges, { signal });
    return encodeManifest(
        { geometry: digester.geometry, seed: digester.seed, level, round, ranges },
        digests,
        digester,
    );
}

/** Every node of level 0: what round 1 describes. */
export function roundOneRanges(g: DigestGeometry): NodeRange[] {
    return [{ first: 0, count: nodeCountAt(g, 0) }];
}

export interface FailbackRound {
    level: number;
    round: number;
    ranges: NodeRange[];
}

export interface RoundResult {
    /** The next round's request (the children of the nodes that differ), or undefined when this disk is done. */
    next?: DigestRequest;
    /** Leaves found to differ in this round, coalesced. */
    differingLeaves: NodeRange[];
    /** Round 1 only: XXH3-128 of every level-0 digest of the Azure disk (what the provider must match after). */
    rootDigest?: string;
    bytesRead: number;
}

/**
 * One round: compares the provider's manifest (`manifestBytes`, the on-premises disk) with the same nodes of
 * `source` (the Azure disk). A node that differs and is all zeros on premises needs no further round: every
 * non-zero leaf of the Azure disk under it differs. A differing leaf is final. Other differing nodes are asked
 * about at the next level.
 */
export async function compareFailbackRound(
    source: ByteSource,
    digester: Digester,
    expected: FailbackRound,
    manifestBytes: Uint8Array,
    signal?: AbortSignal,
): Promise<RoundResult> {
    const g = digester.geometry;
    const manifest = await parseManifest(manifestBytes);
    if (
        manifest.seed !== digester.seed ||
        manifest.geometry.diskSize !== g.diskSize ||
        manifest.geometry.leafSize !== g.leafSize ||
        manifest.geometry.fanout !== g.fanout ||
        manifest.geometry.levels !== g.levels
    ) {
        throw manifestError(
            `the manifest of round ${expected.round} is for another seed or geometry (disk ${manifest.geometry.diskSize} bytes) ` +
                `than this failback (disk ${g.diskSize} bytes)`,
        );
    }
    if (
        manifest.level !== expected.level ||
        manifest.round !== expected.round ||
        manifest.ranges.length !== expected.ranges.length ||
        manifest.ranges.some((r, i) => r.first !== expected.ranges[i]!.first || r.count !== expected.ranges[i]!.count)
    ) {
        throw manifestError(
            `the manifest is round ${manifest.round} of level ${manifest.level}; expected round ${expected.round} ` +
                `of level ${expected.level} listing exactly the requested nodes`,
        );
    }
    const leafLevel = g.levels - 1;
    const leavesOf = new Map<number, Uint8Array>();
    const { digests, bytesRead } = await digestNodes(source, digester, manifest.level, manifest.ranges, {
        signal,
        onLeaves: (node, leaves) => leavesOf.set(node, leaves),
    });
    const differing: NodeRange[] = [];
    const pending: number[] = [];
    let at = 0;
    forEachManifestNode(manifest, digester, (index, target, zero) => {
        const mine = digests.subarray(at, at + DIGEST_BYTES);
        at += DIGEST_BYTES;
        const leaves = leavesOf.get(index)!;
        leavesOf.delete(index);
        if (equal(mine, target)) return;
        if (manifest.level === leafLevel) {
            differing.push({ first: index, count: 1 });
        } else if (zero) {
            const firstLeaf = index * g.fanout ** (leafLevel - manifest.level);
            for (let l = 0; l < leaves.length / DIGEST_BYTES; l++) {
                if (!digester.isZeroDigest(leafLevel, firstLeaf + l, leaves, l * DIGEST_BYTES)) {
                    differing.push({ first: firstLeaf + l, count: 1 });
                }
            }
        } else {
            pending.push(index);
        }
    });
    const result: RoundResult = { differingLeaves: coalesceNodeRanges(differing), bytesRead };
    if (pending.length > 0) {
        result.next = {
            level: manifest.level + 1,
            ranges: coalesceNodeRanges(pending.map((n) => childrenOf(g, manifest.level, n))),
        };
    }
    if (expected.round === 1) {
        const root = Buffer.alloc(DIGEST_BYTES);
        digester.hashInto(digests, root, 0);
        result.rootDigest = root.toString('hex');
    }
    return result;
}

/** The root digest of a whole disk (XXH3-128 of its level-0 digests): the provider's check after applying. */
export async function rootDigestOfDisk(source: ByteSource, digester: Digester, signal?: AbortSignal): Promise<string> {
    const { digests } = await digestNodes(source, digester, 0, roundOneRanges(digester.geometry), { signal });
    const root = Buffer.alloc(DIGEST_BYTES);
    digester.hashInto(digests, root, 0);
    return root.toString('hex');
}

/** Differing leaves as byte runs of at most `maxRunBytes` (whole leaves; the disk's end clips). */
export function leafRangesToBytes(
    g: DigestGeometry,
    leaves: readonly NodeRange[],
    maxRunBytes = 1024 * 1024,
): ByteRange[] {
    const leafLevel = g.levels - 1;
    const out: ByteRange[] = [];
    const step = Math.max(g.leafSize, Math.floor(maxRunBytes / g.leafSize) * g.leafSize);
    for (const r of coalesceNodeRanges(leaves)) {
        const start = nodeBytes(g, leafLevel, r.first).offset;
        const last = nodeBytes(g, leafLevel, r.first + r.count - 1);
        const end = last.offset + last.length;
        for (let o = start; o < end; o += step) out.push({ offset: o, length: Math.min(step, end - o) });
    }
    return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
    for (let i = 0; i < DIGEST_BYTES; i++) if (a[i] !== b[i]) return false;
    return true;
}
