import { HvrError } from '../errors';
import {
    blockSizeAt,
    ByteRange,
    childrenOf,
    coalesceNodeRanges,
    DIGEST_BYTES,
    Digester,
    nodeBytes,
    nodeCountAt,
    NodeRange,
} from './digest';
import { DigestManifest, DigestRequest, encodeDigestRequest, forEachManifestNode, parseManifest } from './manifest';

/**
 * Random access to a disk's bytes; `read` returns exactly `length` bytes or throws. The MS-HRL codec's
 * ByteSource (bufferSource, openFileSource) has this shape.
 */
export interface ByteSource {
    readonly size: number;
    read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

export interface ProviderComparisonOptions {
    /** Bytes read from the source per call; rounded to whole coarse blocks. 8 MiB by default. */
    readChunkBytes?: number;
    /**
     * Digests kept from the first pass for the coarse blocks that differ, so later rounds need not read them again.
     * Past this budget a block's digests are recomputed from the source when a later round needs them.
     * 64 MiB by default (the digests of 16 GiB of differing disk).
     */
    maxRetainedDigestBytes?: number;
    signal?: AbortSignal;
    /** Called after each chunk of the first pass with the bytes read so far. */
    onProgress?: (bytesRead: number, totalBytes: number) => void;
}

/** What the comparison cost, for progress reports and the benchmark. */
export interface ComparisonStats {
    sourceBytesRead: number;
    /** Bytes of manifests received (cloud → provider). */
    manifestBytes: number;
    /** Bytes of encoded digest requests sent (provider → cloud). */
    requestBytes: number;
    rounds: number;
}

function protocolError(message: string): HvrError {
    return new HvrError('RESYNC_MANIFEST_INVALID', `resync comparison: ${message}`);
}

/**
 * The provider's side of a resync comparison, reusable by any provider (the simulator uses it). It reads the
 * source disk once, digests it with the manifest's seed, and walks down the tree only where the target differs:
 *
 *     const cmp = await ProviderComparison.begin(disk, coarseManifest);
 *     for (let req = cmp.nextRequest(); req; req = cmp.nextRequest()) {
 *         await cmp.compare(await askCloud(encodeDigestRequest(req)));   // the cloud answers with a manifest
 *     }
 *     await writeDifferingBlocks(disk, cmp.differingRanges(), logWriter);
 *
 * Nodes the target has as all zeros need no round trip: their children are zeros too.
 */
export class ProviderComparison {
    private readonly retained = new Map<number, Uint8Array[]>();
    private recomputed: { top: number; levels: Uint8Array[] } | undefined;
    private retainedBytes = 0;
    /** Differing nodes of `pendingLevel` whose children the cloud must describe next. */
    private pending: number[] = [];
    private pendingLevel = 0;
    private lastRequest: DigestRequest | undefined;
    private readonly differingLeaves: NodeRange[] = [];
    /** Root digest of the whole source (XXH3-128 of every coarse digest): what the replica must match after. */
    rootDigest: Buffer = Buffer.alloc(DIGEST_BYTES);
    readonly stats: ComparisonStats = { sourceBytesRead: 0, manifestBytes: 0, requestBytes: 0, rounds: 0 };

    private constructor(
        private readonly source: ByteSource,
        private readonly digester: Digester,
        private readonly options: ProviderComparisonOptions,
    ) {}

    /** Reads and digests the whole source and compares it with the coarsest-level manifest (round 1). */
    static async begin(
        source: ByteSource,
        manifestBytes: Uint8Array,
        options: ProviderComparisonOptions = {},
    ): Promise<ProviderComparison> {
        const manifest = await parseManifest(manifestBytes);
        const g = manifest.geometry;
        if (manifest.level !== 0 || manifest.round !== 1) {
            throw protocolError(
                `the first manifest must be round 1 of level 0; got round ${manifest.round} level ${manifest.level}`,
            );
        }
        const tops = nodeCountAt(g, 0);
        if (manifest.ranges.length !== 1 || manifest.ranges[0]!.first !== 0 || manifest.ranges[0]!.count !== tops) {
            throw protocolError(`the first manifest must list all ${tops} coarse blocks`);
        }
        if (source.size !== g.diskSize) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `the source disk has ${source.size} bytes but the replica has ${g.diskSize}: resize before resync`,
                { sourceSize: source.size, diskSize: g.diskSize },
            );
        }
        const cmp = new ProviderComparison(source, await Digester.create(manifest.seed, g), options);
        await cmp.firstPass(manifest);
        return cmp;
    }

    private async firstPass(manifest: DigestManifest): Promise<void> {
        const g = manifest.geometry;
        const topSize = blockSizeAt(g, 0);
        const chunk = Math.max(1, Math.floor((this.options.readChunkBytes ?? 8 * 1024 * 1024) / topSize)) * topSize;
        const budget = this.options.maxRetainedDigestBytes ?? 64 * 1024 * 1024;
        const target = new Map<number, { digest: Uint8Array; zero: boolean }>();
        forEachManifestNode(manifest, this.digester, (index, digest, zero) => target.set(index, { digest, zero }));
        this.stats.manifestBytes += byteLengthOf(manifest);
        this.stats.rounds = 1;
        const topDigests = new Uint8Array(nodeCountAt(g, 0) * DIGEST_BYTES);
        // Read ahead one chunk while hashing the previous one.
        let next = this.readChunk(0, Math.min(chunk, g.diskSize));
        for (let offset = 0; offset < g.diskSize; offset += chunk) {
            const data = await next;
            const following = offset + chunk;
            if (following < g.diskSize) next = this.readChunk(following, Math.min(chunk, g.diskSize - following));
            for (let at = 0; at < data.length; at += topSize) {
                const top = (offset + at) / topSize;
                const span = nodeBytes(g, 0, top);
                const levels = this.digester.subtree(top, data.subarray(at, at + span.length));
                topDigests.set(levels[0]!, top * DIGEST_BYTES);
                const t = target.get(top)!;
                if (equalDigest(levels[0]!, 0, t.digest)) continue;
                if (t.zero) {
                    this.resolveAgainstZeros(top, 0, levels);
                } else {
                    this.pending.push(top);
                    const size = levels.reduce((n, l) => n + l.length, 0);
                    if (this.retainedBytes + size <= budget) {
                        this.retained.set(top, levels);
                        this.retainedBytes += size;
                    }
                }
            }
            this.options.onProgress?.(Math.min(offset + chunk, g.diskSize), g.diskSize);
        }
        this.pendingLevel = 0;
        this.digester.hashInto(topDigests, this.rootDigest, 0);
    }

    private async readChunk(offset: number, length: number): Promise<Buffer> {
        const data = await this.source.read(offset, length, this.options.signal);
        this.stats.sourceBytesRead += length;
        return data;
    }

    /** The digests under coarse block `top`, kept from the first pass or recomputed from the source. */
    private async subtree(top: number): Promise<Uint8Array[]> {
        const kept = this.retained.get(top);
        if (kept) return kept;
        if (this.recomputed?.top === top) return this.recomputed.levels;
        const span = nodeBytes(this.digester.geometry, 0, top);
        const levels = this.digester.subtree(top, await this.readChunk(span.offset, span.length));
        this.recomputed = { top, levels };
        return levels;
    }

    /** Node `index` of `level` differs and the target has it all zeros: every non-zero leaf under it differs. */
    private resolveAgainstZeros(index: number, level: number, levels: Uint8Array[]): void {
        const g = this.digester.geometry;
        const leafLevel = g.levels - 1;
        const perTop = g.fanout ** leafLevel;
        const perNode = g.fanout ** (leafLevel - level);
        const firstLeaf = index * perNode;
        const lastLeaf = Math.min(firstLeaf + perNode, nodeCountAt(g, leafLevel));
        const leaves = levels[leafLevel]!;
        const topFirstLeaf = Math.floor(firstLeaf / perTop) * perTop;
        for (let leaf = firstLeaf; leaf < lastLeaf; leaf++) {
            if (!this.digester.isZeroDigest(leafLevel, leaf, leaves, (leaf - topFirstLeaf) * DIGEST_BYTES)) {
                this.addDifferingLeaf(leaf);
            }
        }
    }

    private addDifferingLeaf(leaf: number): void {
        const last = this.differingLeaves[this.differingLeaves.length - 1];
        if (last && last.first + last.count === leaf) last.count++;
        else this.differingLeaves.push({ first: leaf, count: 1 });
    }

    /** The digests the cloud must publish next, or undefined once the differing leaves are known. */
    nextRequest(): DigestRequest | undefined {
        if (this.pending.length === 0) {
            this.lastRequest = undefined;
            return undefined;
        }
        const g = this.digester.geometry;
        const level = this.pendingLevel + 1;
        const ranges = coalesceNodeRanges(this.pending.map((n) => childrenOf(g, this.pendingLevel, n)));
        this.lastRequest = { level, ranges };
        this.stats.requestBytes += encodeDigestRequest(this.lastRequest).length;
        return this.lastRequest;
    }

    /** Compares the cloud's answer to the last request. */
    async compare(manifestBytes: Uint8Array): Promise<void> {
        const request = this.lastRequest;
        if (!request) throw protocolError('a manifest arrived but no request is outstanding');
        const manifest = await parseManifest(manifestBytes);
        const g = this.digester.geometry;
        if (
            manifest.seed !== this.digester.seed ||
            manifest.geometry.diskSize !== g.diskSize ||
            manifest.geometry.leafSize !== g.leafSize ||
            manifest.geometry.fanout !== g.fanout ||
            manifest.geometry.levels !== g.levels
        ) {
            throw protocolError('the manifest is for another seed or geometry than round 1');
        }
        if (manifest.level !== request.level || !sameRanges(manifest.ranges, request.ranges)) {
            throw protocolError(
                `the manifest (level ${manifest.level}) does not answer the request (level ${request.level})`,
            );
        }
        this.stats.manifestBytes += manifestBytes.length;
        this.stats.rounds++;
        const level = manifest.level;
        const perTop = g.fanout ** level;
        const targets: { index: number; digest: Uint8Array; zero: boolean }[] = [];
        forEachManifestNode(manifest, this.digester, (index, digest, zero) => targets.push({ index, digest, zero }));
        const pending: number[] = [];
        for (const t of targets) {
            const top = Math.floor(t.index / perTop);
            const levels = await this.subtree(top);
            const at = (t.index - top * perTop) * DIGEST_BYTES;
            if (equalDigest(levels[level]!, at, t.digest)) continue;
            if (t.zero) this.resolveAgainstZeros(t.index, level, levels);
            else if (level === g.levels - 1) this.addDifferingLeaf(t.index);
            else pending.push(t.index);
        }
        this.pending = pending;
        this.pendingLevel = level;
        this.lastRequest = undefined;
        if (pending.length === 0 || level === g.levels - 1) {
            this.pending = [];
            this.retained.clear();
            this.retainedBytes = 0;
            this.recomputed = undefined;
        }
    }

    /** Whether the comparison is over (no request outstanding or to make). */
    get done(): boolean {
        return this.pending.length === 0;
    }

    /** The differing bytes, coalesced, in runs of at most `maxRunBytes` (whole leaves; the disk's end clips). */
    differingRanges(maxRunBytes = 1024 * 1024): ByteRange[] {
        if (!this.done) throw new Error('differingRanges() before the comparison is done');
        const g = this.digester.geometry;
        const leafLevel = g.levels - 1;
        const out: ByteRange[] = [];
        for (const r of coalesceNodeRanges(this.differingLeaves)) {
            const start = nodeBytes(g, leafLevel, r.first).offset;
            const lastLeaf = nodeBytes(g, leafLevel, r.first + r.count - 1);
            const end = lastLeaf.offset + lastLeaf.length;
            const step = Math.max(g.leafSize, Math.floor(maxRunBytes / g.leafSize) * g.leafSize);
            for (let o = start; o < end; o += step) out.push({ offset: o, length: Math.min(step, end - o) });
        }
        return out;
    }
}

function byteLengthOf(m: DigestManifest): number {
    return 64 + m.ranges.length * 8 + m.zeroBitmap.length + m.digests.length + 16;
}

function equalDigest(digests: Uint8Array, at: number, other: Uint8Array): boolean {
    for (let i = 0; i < DIGEST_BYTES; i++) if (digests[at + i] !== other[i]) return false;
    return true;
}

function sameRanges(a: readonly NodeRange[], b: readonly NodeRange[]): boolean {
    return a.length === b.length && a.every((r, i) => r.first === b[i]!.first && r.count === b[i]!.count);
}

/** Where the differing blocks go: an MS-HRL writer (`HrlFileWriter`) or anything with the same `add`. */
export interface ResyncLogSink {
    add(diskOffset: number, data: Buffer): Promise<void> | void;
}

/**
 * Copies the differing ranges from the source into the resync log, one entry per range, in disk order, one range
 * in memory at a time. Returns the data bytes written.
 */
export async function writeDifferingBlocks(
    source: ByteSource,
    ranges: readonly ByteRange[],
    sink: ResyncLogSink,
    signal?: AbortSignal,
): Promise<number> {
    let bytes = 0;
    for (const r of ranges) {
        await sink.add(r.offset, await source.read(r.offset, r.length, signal));
        bytes += r.length;
    }
    return bytes;
}
