import { RestError } from '@azure/core-rest-pipeline';
import { BlobLeaseClient, ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { replicaBlobName } from '../contracts/blobNames';
import { HvrError } from '../errors';
import { deadline } from '../storage/deadline';
import {
    blockSizeAt,
    ByteRange,
    checksum128,
    defaultGeometry,
    DIGEST_BYTES,
    Digester,
    DigestGeometry,
    DigestSeed,
    NodeRange,
    nodeCountAt,
    randomDigestSeed,
} from './digest';
import { encodeManifest } from './manifest';
import {
    intersectByteRanges,
    mergeByteRanges,
    newReadCounters,
    readExtents,
    ReplicaReadCounters,
    writtenRanges,
} from './target';

/**
 * The digest index of one replica disk: every node of its digest tree, kept next to the replica as a page blob
 * `{vmId}/{diskId}.digests`, so the cloud side of a resync reads only the disk blocks written since the index was
 * last brought up to date. Layout (docs/resync.md): a 512-byte header, then one region per level (coarsest
 * first), each a 512-byte-aligned array of 16-byte slots, node i at region + 16 i. A slot of 16 zero bytes means
 * "all zeros under this node" (so a never-written index reads as an all-zero disk, and stays sparse).
 *
 * Dirty tracking: before the merge sets a replica's sequence number to n, it records the ranges log n writes as a
 * marker blob `{vmId}/{diskId}.dirty/{n}` (`markDirty`). A refresh reads the replica's sequence number S first and
 * consumes only markers n <= S: their writes were complete before it read anything, and a marker for a log still
 * being applied stays for the next refresh. A crash between marking and applying only costs a re-hash.
 */
export const INDEX_MAGIC = Buffer.from('HVRDGIDX', 'ascii');
export const INDEX_VERSION = 1;
export const INDEX_HEADER_SIZE = 512;
const MARKER_MAGIC = Buffer.from('HVRDIRTY', 'ascii');
const PAGE = 512;
/** Disk bytes processed per step of a refresh: its leaves' slots are one 64 KiB index read. */
const WINDOW_BYTES = 16 * 1024 * 1024;
const LEASE_SECONDS = 60;

/** Where a disk's replica, index and dirty markers live. */
export interface DiskBlobs {
    container: ContainerClient;
    vmId: string;
    diskId: string;
}

export function replicaBlobNameOf(d: Pick<DiskBlobs, 'vmId' | 'diskId'>): string {
    return replicaBlobName(d.vmId, d.diskId);
}
export function digestIndexBlobName(d: Pick<DiskBlobs, 'vmId' | 'diskId'>): string {
    return `${d.vmId}/${d.diskId}.digests`;
}
function markerPrefix(d: Pick<DiskBlobs, 'vmId' | 'diskId'>): string {
    return `${d.vmId}/${d.diskId}.dirty/`;
}
export function dirtyMarkerBlobName(d: Pick<DiskBlobs, 'vmId' | 'diskId'>, sequence: number): string {
    return `${markerPrefix(d)}${String(sequence).padStart(12, '0')}`;
}
/** The log sequence number a marker blob's name carries, or undefined for a name that is not a marker's. */
function markerSequence(d: Pick<DiskBlobs, 'vmId' | 'diskId'>, name: string): number | undefined {
    const tail = name.slice(markerPrefix(d).length);
    if (!/^[0-9]{12,16}$/.test(tail)) return undefined;
    const n = Number(tail);
    return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}
/** How many of the logs (after, through] the runs of log sequence numbers `runs` name, each counted once. */
function loggedWithin(runs: readonly ByteRange[], after: number, through: number): number {
    if (through <= after) return 0;
    const within = intersectByteRanges(mergeByteRanges(runs), [{ offset: after + 1, length: through - after }]);
    return within.reduce((sum, r) => sum + r.length, 0);
}

/** The index header: what the slots mean and how far they are valid. */
export interface DigestIndexHeader {
    geometry: DigestGeometry;
    seed: DigestSeed;
    /** Incremented by each rotation to a new seed. */
    generation: number;
    /** Leaves [0, builtThroughLeaf) are valid; the rest are being (re)built. */
    builtThroughLeaf: number;
    /** The replica sequence number whose dirty markers have all been consumed. */
    appliedSequence: number;
}

function indexInvalid(message: string, details: Record<string, unknown> = {}): HvrError {
    return new HvrError('RESYNC_INDEX_INVALID', `digest index: ${message}`, details);
}

/** Byte offset of each level's region in the index blob, and the blob's size. */
export function indexLayout(g: DigestGeometry): { regions: number[]; size: number } {
    const regions: number[] = [];
    let at = INDEX_HEADER_SIZE;
    for (let level = 0; level < g.levels; level++) {
        regions.push(at);
        at += Math.ceil((nodeCountAt(g, level) * DIGEST_BYTES) / PAGE) * PAGE;
    }
    return { regions, size: at };
}

async function encodeIndexHeader(h: DigestIndexHeader): Promise<Buffer> {
    const b = Buffer.alloc(INDEX_HEADER_SIZE);
    INDEX_MAGIC.copy(b, 0);
    b.writeUInt16LE(INDEX_VERSION, 8);
    b.writeUInt16LE(INDEX_HEADER_SIZE, 10);
    b.writeUInt8(h.geometry.levels, 12);
    b.writeUInt16LE(h.geometry.fanout, 14);
    b.writeUInt32LE(h.geometry.leafSize, 16);
    b.writeBigUInt64LE(BigInt(h.geometry.diskSize), 24);
    b.writeBigUInt64LE(h.seed, 32);
    b.writeBigUInt64LE(BigInt(h.generation), 40);
    b.writeBigUInt64LE(BigInt(h.builtThroughLeaf), 48);
    b.writeBigUInt64LE(BigInt(h.appliedSequence), 56);
    (await checksum128([b.subarray(0, INDEX_HEADER_SIZE - 16)])).copy(b, INDEX_HEADER_SIZE - 16);
    return b;
}

/** Parses an index header, checking magic, version, checksum and geometry. */
export async function parseIndexHeader(b: Buffer): Promise<DigestIndexHeader> {
    if (b.length < INDEX_HEADER_SIZE) throw indexInvalid(`header of ${b.length} bytes, expected ${INDEX_HEADER_SIZE}`);
    if (!b.subarray(0, 8).equals(INDEX_MAGIC)) throw indexInvalid('bad magic at offset 0');
    const version = b.readUInt16LE(8);
    if (version !== INDEX_VERSION) throw indexInvalid(`unsupported version ${version} at offset 8`);
    const sum = await checksum128([b.subarray(0, INDEX_HEADER_SIZE - 16)]);
    if (!sum.equals(b.subarray(INDEX_HEADER_SIZE - 16, INDEX_HEADER_SIZE))) {
        throw indexInvalid(`header checksum at offset ${INDEX_HEADER_SIZE - 16} does not match`);
    }
    let geometry: DigestGeometry;
    try {
        geometry = {
            diskSize: Number(b.readBigUInt64LE(24)),
            leafSize: b.readUInt32LE(16),
            fanout: b.readUInt16LE(14),
            levels: b.readUInt8(12),
        };
        await Digester.create(0n, geometry);
    } catch (err) {
        throw indexInvalid(`geometry: ${(err as Error).message}`);
    }
    const builtThroughLeaf = Number(b.readBigUInt64LE(48));
    if (builtThroughLeaf > nodeCountAt(geometry, geometry.levels - 1)) {
        throw indexInvalid(`built-through leaf ${builtThroughLeaf} at offset 48 is past the disk`);
    }
    return {
        geometry,
        seed: b.readBigUInt64LE(32),
        generation: Number(b.readBigUInt64LE(40)),
        builtThroughLeaf,
        appliedSequence: Number(b.readBigUInt64LE(56)),
    };
}

function isNotFound(err: unknown): boolean {
    return err instanceof RestError && err.statusCode === 404;
}

/**
 * Records that log `sequence` writes `ranges` of the replica. Call it before the replica's sequence number is set
 * to `sequence` (before the first Put Page is best); repeating it is harmless.
 */
export async function markDirty(
    d: DiskBlobs,
    sequence: number,
    ranges: readonly ByteRange[],
    signal?: AbortSignal,
): Promise<void> {
    if (!Number.isSafeInteger(sequence) || sequence < 1) throw new RangeError(`log sequence ${sequence} must be >= 1`);
    const body = await encodeMarker(sequence, [{ offset: sequence, length: 1 }], mergeByteRanges(ranges));
    await d.container
        .getBlockBlobClient(dirtyMarkerBlobName(d, sequence))
        .upload(body, body.length, { abortSignal: deadline(undefined, signal) });
}

/** What one marker blob says: the logs it stands for and the disk ranges they wrote. */
interface DirtyMarker {
    /** Runs of log sequence numbers, as `{offset: first, length: count}`, sorted and merged. */
    logs: ByteRange[];
    ranges: ByteRange[];
}

/**
 * A marker's bytes. Version 1, one log's marker (what `markDirty` writes): magic, u32 version, u32 range count,
 * u64 sequence, then (u64 offset, u64 length) per range, then a 16-byte checksum of all before it. Version 2, a
 * compacted marker (several logs'): the same 24 bytes, then u32 run count and 4 zero bytes, (u64 first, u64 count)
 * per run of log sequence numbers, the ranges, the checksum. The sequence is the name's: the highest log covered.
 */
async function encodeMarker(
    sequence: number,
    logs: readonly ByteRange[],
    ranges: readonly ByteRange[],
): Promise<Buffer> {
    const single = logs.length === 1 && logs[0]!.offset === sequence && logs[0]!.length === 1;
    const head = single ? 24 : 32 + logs.length * 16;
    const body = Buffer.alloc(head + ranges.length * 16 + 16);
    MARKER_MAGIC.copy(body, 0);
    body.writeUInt32LE(single ? 1 : 2, 8);
    body.writeUInt32LE(ranges.length, 12);
    body.writeBigUInt64LE(BigInt(sequence), 16);
    if (!single) {
        body.writeUInt32LE(logs.length, 24);
        logs.forEach((run, i) => {
            body.writeBigUInt64LE(BigInt(run.offset), 32 + i * 16);
            body.writeBigUInt64LE(BigInt(run.length), 40 + i * 16);
        });
    }
    ranges.forEach((r, i) => {
        body.writeBigUInt64LE(BigInt(r.offset), head + i * 16);
        body.writeBigUInt64LE(BigInt(r.length), head + 8 + i * 16);
    });
    (await checksum128([body.subarray(0, body.length - 16)])).copy(body, body.length - 16);
    return body;
}

async function parseMarker(body: Buffer, name: string, sequence: number): Promise<DirtyMarker> {
    const bad = (why: string): HvrError => indexInvalid(`dirty marker ${name}: ${why}`, { marker: name });
    if (body.length < 40 || !body.subarray(0, 8).equals(MARKER_MAGIC)) throw bad('bad magic or too short');
    const version = body.readUInt32LE(8);
    if (version !== 1 && version !== 2) throw bad(`unsupported version ${version} at offset 8`);
    const count = body.readUInt32LE(12);
    const runCount = version === 2 ? body.readUInt32LE(24) : 0;
    if (version === 2 && runCount < 1) throw bad('a compacted marker names no logs');
    const head = version === 1 ? 24 : 32 + runCount * 16;
    if (body.length !== head + count * 16 + 16) {
        throw bad(
            `${body.length} bytes do not hold ${version === 2 ? `${runCount} log runs and ` : ''}${count} ranges`,
        );
    }
    const sum = await checksum128([body.subarray(0, body.length - 16)]);
    if (!sum.equals(body.subarray(body.length - 16))) throw bad('checksum does not match');
    const u64 = (at: number, what: string): number => {
        const v = body.readBigUInt64LE(at);
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${what} ${v} at offset ${at} is out of range`);
        return Number(v);
    };
    const held = u64(16, 'sequence');
    if (held !== sequence) throw bad(`holds log ${held}, its name says ${sequence}`);
    const logs: ByteRange[] = [];
    for (let i = 0; i < runCount; i++) {
        const first = u64(32 + i * 16, 'first log');
        const n = u64(40 + i * 16, 'log count');
        if (first < 1 || n < 1 || first + n - 1 > sequence) {
            throw bad(`log run ${first}+${n} at offset ${32 + i * 16} is not within 1–${sequence}`);
        }
        logs.push({ offset: first, length: n });
    }
    const ranges: ByteRange[] = [];
    for (let i = 0; i < count; i++) {
        ranges.push({ offset: u64(head + i * 16, 'range offset'), length: u64(head + 8 + i * 16, 'range length') });
    }
    return { logs: version === 1 ? [{ offset: sequence, length: 1 }] : mergeByteRanges(logs), ranges };
}

/** What a refresh did. */
export interface RefreshResult {
    /** The index is fully valid for the replica as of `appliedSequence`. */
    complete: boolean;
    appliedSequence: number;
    leavesHashed: number;
    markersConsumed: number;
    /** Logs sealed since the index was current that left no dirty marker; more than 0 forced a full rebuild. */
    unmarkedLogs: number;
    replica: ReplicaReadCounters;
    indexBytesRead: number;
    indexBytesWritten: number;
}

export interface RefreshOptions {
    /** Stop after about this many replica bytes read (a background rebuild in steps); unlimited by default. */
    budgetBytes?: number;
    /** Merge replica reads whose gap is at most this; 32 KiB by default (fewer calls for a few more bytes). */
    readGapBytes?: number;
    concurrency?: number;
    signal?: AbortSignal;
    /** Seed of a new index; random by default. */
    seedForNewIndex?: DigestSeed;
}

/** The digest index of one disk; open it with `openDigestIndex`. */
export class DigestIndex {
    private constructor(
        readonly disk: DiskBlobs,
        readonly blob: PageBlobClient,
        readonly header: DigestIndexHeader,
        readonly regions: number[],
    ) {}

    /** Opens the index, or returns undefined when there is none yet. */
    static async open(d: DiskBlobs, signal?: AbortSignal): Promise<DigestIndex | undefined> {
        const blob = d.container.getPageBlobClient(digestIndexBlobName(d));
        let head: Buffer;
        try {
            head = await blob.downloadToBuffer(0, INDEX_HEADER_SIZE, { abortSignal: deadline(undefined, signal) });
        } catch (err) {
            if (isNotFound(err)) return undefined;
            throw err;
        }
        const header = await parseIndexHeader(head);
        return new DigestIndex(d, blob, header, indexLayout(header.geometry).regions);
    }

    get geometry(): DigestGeometry {
        return this.header.geometry;
    }

    /** Whether every slot is valid for the replica at sequence number `replicaSequence`. */
    isCurrent(replicaSequence: number): boolean {
        const leaves = nodeCountAt(this.geometry, this.geometry.levels - 1);
        return this.header.builtThroughLeaf === leaves && this.header.appliedSequence >= replicaSequence;
    }

    /** The slots of `ranges` of `level`, in order (16 zero bytes for an all-zero node). */
    async readSlots(level: number, ranges: readonly NodeRange[], signal?: AbortSignal): Promise<Uint8Array> {
        const total = ranges.reduce((n, r) => n + r.count, 0);
        const out = new Uint8Array(total * DIGEST_BYTES);
        const base = this.regions[level]!;
        const positions: { at: number; r: NodeRange }[] = [];
        let at = 0;
        for (const r of ranges) {
            positions.push({ at, r });
            at += r.count * DIGEST_BYTES;
        }
        // Ranges close together are read as one (a request costs more than a few hundred bytes).
        const extents = mergeByteRanges(
            ranges.map((r) => ({ offset: base + r.first * DIGEST_BYTES, length: r.count * DIGEST_BYTES })),
            4096,
        );
        const pieces = new Map<number, Buffer>();
        for (const e of extents) {
            pieces.set(
                e.offset,
                await this.blob.downloadToBuffer(e.offset, e.length, { abortSignal: deadline(undefined, signal) }),
            );
        }
        let ei = 0;
        for (const { at: dst, r } of positions) {
            const offset = base + r.first * DIGEST_BYTES;
            while (extents[ei]!.offset + extents[ei]!.length < offset + r.count * DIGEST_BYTES) ei++;
            const e = extents[ei]!;
            out.set(pieces.get(e.offset)!.subarray(offset - e.offset, offset - e.offset + r.count * DIGEST_BYTES), dst);
        }
        return out;
    }

    /**
     * The manifest of `ranges` of `level` for round `round`, from the slots: no replica read. The index must be
     * current (refresh first): a stale index would hide differences.
     */
    async manifest(level: number, round: number, ranges: NodeRange[], signal?: AbortSignal): Promise<Buffer> {
        if (this.header.builtThroughLeaf < nodeCountAt(this.geometry, this.geometry.levels - 1)) {
            throw new HvrError(
                'REPLICA_STATE_INVALID',
                `digest index of ${this.disk.vmId}/${this.disk.diskId} is not built (through leaf ${this.header.builtThroughLeaf}); refresh it first`,
            );
        }
        const slots = await this.readSlots(level, ranges, signal);
        return encodeManifest({ geometry: this.geometry, seed: this.header.seed, level, round, ranges }, slots);
    }

    /** The root digest (XXH3-128 of the coarsest level with zero nodes expanded), to compare with the source's. */
    async rootDigest(signal?: AbortSignal): Promise<Buffer> {
        const digester = await Digester.create(this.header.seed, this.geometry);
        const count = nodeCountAt(this.geometry, 0);
        const slots = await this.readSlots(0, [{ first: 0, count }], signal);
        for (let i = 0; i < count; i++) {
            if (isZeroSlot(slots, i * DIGEST_BYTES)) slots.set(digester.zeroDigest(0, i), i * DIGEST_BYTES);
        }
        const out = Buffer.alloc(DIGEST_BYTES);
        digester.hashInto(slots, out, 0);
        return out;
    }
}

function isZeroSlot(slots: Uint8Array, at: number): boolean {
    for (let i = 0; i < DIGEST_BYTES; i++) if (slots[at + i] !== 0) return false;
    return true;
}

async function writeHeader(blob: PageBlobClient, header: DigestIndexHeader, leaseId: string, signal?: AbortSignal) {
    const bytes = await encodeIndexHeader(header);
    await blob.uploadPages(bytes, 0, INDEX_HEADER_SIZE, {
        conditions: { leaseId },
        abortSignal: deadline(undefined, signal),
    });
}

/**
 * Opens the index, creating an empty one (all stale, a fresh random seed) when there is none or it is unusable.
 * The new blob's header is written at once, so a refresh that dies before its first window leaves a valid (if
 * unbuilt) index rather than a zero header the next refresh would take for corruption. An unusable blob is
 * replaced only under its lease: a refresh holding it (or one that died holding it, until the lease expires)
 * keeps its blob, and the caller gets CONCURRENT_UPDATE to retry, never a Put Blob refused for a missing lease.
 */
async function openOrCreate(
    d: DiskBlobs,
    diskSize: number,
    options: RefreshOptions,
): Promise<{ blob: PageBlobClient; header: DigestIndexHeader; created: boolean }> {
    const blob = d.container.getPageBlobClient(digestIndexBlobName(d));
    let existing: DigestIndex | undefined;
    let present = true;
    try {
        existing = await DigestIndex.open(d, options.signal);
        present = existing !== undefined;
    } catch (err) {
        if (!(err instanceof HvrError && err.code === 'RESYNC_INDEX_INVALID')) throw err;
    }
    if (existing && existing.geometry.diskSize === diskSize) {
        return { blob, header: existing.header, created: false };
    }
    const geometry = defaultGeometry(diskSize);
    const header: DigestIndexHeader = {
        geometry,
        seed: options.seedForNewIndex ?? randomDigestSeed(),
        generation: (existing?.header.generation ?? 0) + 1,
        builtThroughLeaf: 0,
        appliedSequence: 0,
    };
    const size = indexLayout(geometry).size;
    if (!present) {
        // The first index of this disk, unless another worker created one since it was found missing.
        try {
            await blob.create(size, {
                conditions: { ifNoneMatch: '*' },
                abortSignal: deadline(undefined, options.signal),
            });
        } catch (err) {
            if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412)) {
                throw new HvrError('CONCURRENT_UPDATE', `digest index ${blob.name} is being created by another worker`);
            }
            throw err;
        }
    }
    // A new blob replaces any old one (another size, or a corrupt header) and starts sparse: all slots zero.
    await withLease(blob, options.signal, async (leaseId) => {
        if (present) {
            await blob.create(size, { conditions: { leaseId }, abortSignal: deadline(undefined, options.signal) });
        }
        await writeHeader(blob, header, leaseId, options.signal);
    });
    return { blob, header, created: true };
}

async function withLease<T>(
    blob: PageBlobClient,
    signal: AbortSignal | undefined,
    fn: (leaseId: string) => Promise<T>,
) {
    const lease: BlobLeaseClient = blob.getBlobLeaseClient();
    try {
        await lease.acquireLease(LEASE_SECONDS, { abortSignal: deadline(undefined, signal) });
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 409) {
            throw new HvrError('CONCURRENT_UPDATE', `digest index ${blob.name} is being refreshed by another worker`);
        }
        throw err;
    }
    const renew = setInterval(
        () => {
            lease.renewLease({ abortSignal: deadline() }).catch(() => undefined);
        },
        (LEASE_SECONDS * 1000) / 3,
    );
    renew.unref();
    try {
        return await fn(lease.leaseId);
    } finally {
        clearInterval(renew);
        await lease.releaseLease({ abortSignal: deadline() }).catch(() => undefined);
    }
}

/**
 * Brings the digest index of a disk up to date with its replica: re-hashes the leaves named by the consumed dirty
 * markers and any not yet built, reading only their written parts, then their ancestors from the slots. The
 * replica's never-written ranges (Get Page Ranges) are zeros and are not read. Holds a lease on the index blob
 * for the duration, so two refreshes never interleave. Resumable: a refresh stopped by its budget, a crash or a
 * timeout continues from where the header says.
 */
export async function refreshDigestIndex(d: DiskBlobs, options: RefreshOptions = {}): Promise<RefreshResult> {
    const signal = options.signal;
    const replica = d.container.getPageBlobClient(replicaBlobNameOf(d));
    const props = await replica.getProperties({ abortSignal: deadline(undefined, signal) });
    const replicaSize = props.contentLength ?? 0;
    const diskSize = replicaSize - 512; // the fixed-VHD footer is not disk data
    const sequence = props.blobSequenceNumber ?? 0;
    const { blob, header } = await openOrCreate(d, diskSize, options);
    return withLease(blob, signal, async (leaseId) => {
        const g = header.geometry;
        const leafLevel = g.levels - 1;
        const leafCount = nodeCountAt(g, leafLevel);
        const { regions } = indexLayout(g);
        const digester = await Digester.create(header.seed, g);
        const result: RefreshResult = {
            complete: false,
            appliedSequence: header.appliedSequence,
            leavesHashed: 0,
            markersConsumed: 0,
            unmarkedLogs: 0,
            replica: newReadCounters(),
            indexBytesRead: 0,
            indexBytesWritten: 0,
        };

        // 1. Dirty markers of logs fully applied before this refresh started.
        const consumed: string[] = [];
        const dirty: ByteRange[] = [];
        const marked: ByteRange[] = [];
        for await (const item of d.container.listBlobsFlat({
            prefix: markerPrefix(d),
            abortSignal: deadline(undefined, signal),
        })) {
            const n = markerSequence(d, item.name);
            if (n === undefined || n > sequence) continue;
            const body = await d.container
                .getBlockBlobClient(item.name)
                .downloadToBuffer(0, undefined, { abortSignal: deadline(undefined, signal) });
            const marker = await parseMarker(body, item.name, n);
            dirty.push(...marker.ranges);
            marked.push(...marker.logs);
            consumed.push(item.name);
        }
        // The logs in (applied, S] some marker stands for: a compacted marker and a leftover marker of a log it
        // covers (a compaction stopped between its write and its deletes) count once.
        const markedSinceApplied = loggedWithin(marked, header.appliedSequence, sequence);
        // Every log sealed since the index was current must have left its marker. One that did not (a merge that
        // did not mark, a replica changed behind the merge's back) makes the built slots untrustworthy: rebuild
        // them all, as of this sequence number, rather than publish digests of content that is gone.
        const unmarked = sequence - header.appliedSequence - markedSinceApplied;
        if (header.builtThroughLeaf > 0 && unmarked > 0) {
            result.unmarkedLogs = unmarked;
            header.builtThroughLeaf = 0;
            header.appliedSequence = sequence;
            await writeHeader(blob, header, leaseId, signal);
            result.indexBytesWritten += INDEX_HEADER_SIZE;
        }

        // 2. Stale leaves: the dirty ones and those not built yet.
        const leafBytes = (r: ByteRange): ByteRange => {
            const first = Math.floor(r.offset / g.leafSize);
            const last = Math.min(leafCount, Math.ceil((r.offset + r.length) / g.leafSize));
            return { offset: first, length: last - first };
        };
        const staleLeaves = mergeByteRanges([
            ...dirty.map(leafBytes),
            { offset: header.builtThroughLeaf, length: leafCount - header.builtThroughLeaf },
        ]);
        const written = staleLeaves.length > 0 ? await writtenRanges(replica, diskSize, result.replica, signal) : [];

        // 3. Window by window (whole coarse blocks, so every ancestor of a window's leaves lies in the window).
        const windowBytes = Math.max(
            blockSizeAt(g, 0),
            Math.floor(WINDOW_BYTES / blockSizeAt(g, 0)) * blockSizeAt(g, 0),
        );
        const leavesPerWindow = windowBytes / g.leafSize;
        let builtThrough = header.builtThroughLeaf;
        let stoppedEarly = false;
        for (let wi = 0; wi * leavesPerWindow < leafCount; wi++) {
            const wFirst = wi * leavesPerWindow;
            const wEnd = Math.min(leafCount, wFirst + leavesPerWindow);
            const stale = intersectByteRanges(staleLeaves, [{ offset: wFirst, length: wEnd - wFirst }]);
            if (stale.length === 0) continue;
            if (options.budgetBytes !== undefined && result.replica.bytesRead >= options.budgetBytes) {
                stoppedEarly = true;
                break;
            }
            await refreshWindow(
                replica,
                blob,
                leaseId,
                digester,
                regions,
                wFirst,
                wEnd,
                stale,
                written,
                options,
                result,
            );
            if (wFirst <= builtThrough && builtThrough < wEnd) {
                // Record rebuild progress as it goes, so an interrupted rebuild resumes here.
                builtThrough = wEnd;
                await writeHeader(blob, { ...header, builtThroughLeaf: builtThrough }, leaseId, signal);
                result.indexBytesWritten += INDEX_HEADER_SIZE;
            }
        }

        header.builtThroughLeaf = builtThrough;
        if (!stoppedEarly) header.appliedSequence = Math.max(header.appliedSequence, sequence);
        await writeHeader(blob, header, leaseId, signal);
        result.indexBytesWritten += INDEX_HEADER_SIZE;
        if (!stoppedEarly) {
            for (const name of consumed) {
                await d.container
                    .deleteBlob(name, { abortSignal: deadline(undefined, signal) })
                    .catch((err: unknown) => {
                        if (!isNotFound(err)) throw err;
                    });
            }
            result.markersConsumed = consumed.length;
        }
        result.complete = !stoppedEarly && builtThrough === leafCount;
        result.appliedSequence = header.appliedSequence;
        return result;
    });
}

/** Re-hashes the stale leaves of one window and every ancestor of theirs, then writes the window's slots back. */
async function refreshWindow(
    replica: PageBlobClient,
    blob: PageBlobClient,
    leaseId: string,
    digester: Digester,
    regions: number[],
    wFirst: number,
    wEnd: number,
    stale: ByteRange[],
    written: ByteRange[],
    options: RefreshOptions,
    result: RefreshResult,
): Promise<void> {
    const g = digester.geometry;
    const leafLevel = g.levels - 1;
    const signal = options.signal;
    // The window's slots of every level, page-aligned.
    const slices = [];
    for (let level = 0; level < g.levels; level++) {
        const per = g.fanout ** (leafLevel - level);
        const first = Math.floor(wFirst / per);
        const end = Math.ceil(wEnd / per);
        const from = regions[level]! + first * DIGEST_BYTES;
        const to = regions[level]! + end * DIGEST_BYTES;
        const pageFrom = Math.floor(from / PAGE) * PAGE;
        const pageTo = Math.ceil(to / PAGE) * PAGE;
        const bytes = await blob.downloadToBuffer(pageFrom, pageTo - pageFrom, {
            abortSignal: deadline(undefined, signal),
        });
        result.indexBytesRead += bytes.length;
        slices.push({
            first,
            end,
            pageFrom,
            bytes,
            slotAt: (i: number) => regions[level]! + i * DIGEST_BYTES - pageFrom,
        });
    }

    // Leaves: written parts are read (large reads, small gaps merged), never-written ones are zeros.
    const leafSlice = slices[leafLevel]!;
    const staleBytes = stale.map((r) => ({ offset: r.offset * g.leafSize, length: r.length * g.leafSize }));
    const clipped = staleBytes.map((r) => ({ offset: r.offset, length: Math.min(r.length, g.diskSize - r.offset) }));
    const toRead = mergeByteRanges(
        intersectByteRanges(clipped, written).map((r) => {
            const start = Math.floor(r.offset / g.leafSize) * g.leafSize;
            const end = Math.min(g.diskSize, Math.ceil((r.offset + r.length) / g.leafSize) * g.leafSize);
            return { offset: start, length: end - start };
        }),
        options.readGapBytes ?? 32 * 1024,
    );
    const zeroSlot = Buffer.alloc(DIGEST_BYTES);
    for (const r of stale) {
        for (let leaf = r.offset; leaf < r.offset + r.length; leaf++)
            zeroSlot.copy(leafSlice.bytes, leafSlice.slotAt(leaf));
    }
    const isStale = (leaf: number): boolean => stale.some((r) => leaf >= r.offset && leaf < r.offset + r.length);
    await readExtents(
        replica,
        toRead,
        (offset, data) => {
            for (let at = 0; at < data.length; at += g.leafSize) {
                const leaf = (offset + at) / g.leafSize;
                if (!isStale(leaf)) continue; // read only to save a request
                const slot = leafSlice.slotAt(leaf);
                digester.leafInto(data.subarray(at, at + g.leafSize), leafSlice.bytes, slot);
                if (digester.isZeroDigest(leafLevel, leaf, leafSlice.bytes, slot)) zeroSlot.copy(leafSlice.bytes, slot);
                result.leavesHashed++;
            }
        },
        { counters: result.replica, signal, concurrency: options.concurrency },
    );

    // Ancestors, from the slots below (zero slots expanded to the zero digest of their node).
    let changed = new Set<number>();
    for (const r of stale)
        for (let leaf = r.offset; leaf < r.offset + r.length; leaf++) changed.add(Math.floor(leaf / g.fanout));
    for (let level = leafLevel - 1; level >= 0; level--) {
        const below = slices[level + 1]!;
        const here = slices[level]!;
        const next = new Set<number>();
        const children = Buffer.alloc(g.fanout * DIGEST_BYTES);
        for (const node of changed) {
            const firstChild = node * g.fanout;
            const count = Math.min(g.fanout, nodeCountAt(g, level + 1) - firstChild);
            for (let c = 0; c < count; c++) {
                const at = below.slotAt(firstChild + c);
                if (isZeroSlot(below.bytes, at))
                    children.set(digester.zeroDigest(level + 1, firstChild + c), c * DIGEST_BYTES);
                else below.bytes.copy(children, c * DIGEST_BYTES, at, at + DIGEST_BYTES);
            }
            const slot = here.slotAt(node);
            digester.hashInto(children.subarray(0, count * DIGEST_BYTES), here.bytes, slot);
            if (digester.isZeroDigest(level, node, here.bytes, slot)) zeroSlot.copy(here.bytes, slot);
            next.add(Math.floor(node / g.fanout));
        }
        changed = next;
    }

    // Write back, coarsest level last. A crash part-way leaves this window's markers in place (they are deleted
    // only after the header), so the next refresh redoes the window.
    for (let level = leafLevel; level >= 0; level--) {
        const s = slices[level]!;
        for (let o = 0; o < s.bytes.length; o += 4 * 1024 * 1024) {
            const len = Math.min(4 * 1024 * 1024, s.bytes.length - o);
            await blob.uploadPages(s.bytes.subarray(o, o + len), s.pageFrom + o, len, {
                conditions: { leaseId },
                abortSignal: deadline(undefined, signal),
            });
            result.indexBytesWritten += len;
        }
    }
}

/**
 * Starts a new generation of the index with a new seed (all slots stale): call it once a resync has revealed the
 * current seed to the provider. The next refreshes rebuild it, in steps if they have a budget.
 */
export async function rotateDigestIndex(d: DiskBlobs, seed: DigestSeed = randomDigestSeed(), signal?: AbortSignal) {
    const index = await DigestIndex.open(d, signal);
    if (!index) return;
    const header: DigestIndexHeader = {
        ...index.header,
        seed,
        generation: index.header.generation + 1,
        builtThroughLeaf: 0,
    };
    await withLease(index.blob, signal, (leaseId) => writeHeader(index.blob, header, leaseId, signal));
}

/**
 * Marks every slot stale without changing the seed: call it after the replica was restored from a snapshot
 * (a rolled-back resync), whose content the dirty markers do not describe. `restoredSequence`, the sequence
 * number the restored replica carries, becomes the index's applied sequence, so a refresh that went past it
 * before the restore does not leave the index claiming logs the replica no longer holds.
 */
export async function invalidateDigestIndex(
    d: DiskBlobs,
    signal?: AbortSignal,
    restoredSequence?: number,
): Promise<void> {
    const index = await DigestIndex.open(d, signal);
    if (!index) return;
    const header: DigestIndexHeader = {
        ...index.header,
        builtThroughLeaf: 0,
        ...(restoredSequence !== undefined ? { appliedSequence: restoredSequence } : {}),
    };
    await withLease(index.blob, signal, (leaseId) => writeHeader(index.blob, header, leaseId, signal));
}

/** The merge compacts its disk's dirty markers after every this many logs (`compactDirtyMarkers`). */
export const DIRTY_MARKER_COMPACT_EVERY_LOGS = 32;
/**
 * A compacted marker lists at most this many byte ranges; beyond, neighbouring ranges are joined (the next refresh
 * re-hashes a few more leaves, never fewer).
 */
export const MAX_COMPACTED_MARKER_RANGES = 4096;

/** What a compaction did. */
export interface CompactionResult {
    /** The disk has a digest index (markers are folded, not dropped). */
    indexed: boolean;
    /** Markers folded into `compactedInto`. */
    markersFolded: number;
    /** Markers deleted: folded ones, ones a refresh had consumed, or (no index) all up to the replica's sequence. */
    markersDeleted: number;
    /** The compacted marker written, if any. */
    compactedInto?: string;
}

/**
 * Keeps a disk's dirty markers from piling up between refreshes of its digest index (one marker per applied log,
 * and a refresh runs only in a resync). Reads the replica's sequence number S first and touches only markers <= S:
 * a log still being applied keeps its own.
 *
 * - Without an index (or with an unreadable one, which a refresh rebuilds whole) the markers describe changes to
 *   nothing a refresh will reuse: they are deleted. An index created at that moment then misses markers it counts
 *   on, and its next refresh rebuilds every slot (`unmarkedLogs`): a compaction can cost a rebuild, never a stale
 *   digest.
 * - With an index, under its lease (as a refresh holds, so the two never interleave), the markers above the index's
 *   applied sequence are folded into one compacted marker named by the highest of them, which lists the logs it
 *   stands for and their ranges widened to whole leaves (`MAX_COMPACTED_MARKER_RANGES`); it is written first
 *   (conditioned on that marker's ETag), then the folded ones are deleted, so a stop in between leaves both, which a
 *   refresh counts once. Markers at or below the applied sequence (a refresh stopped before its deletes) are
 *   deleted.
 *
 * CONCURRENT_UPDATE (recoverable) while a refresh holds the index's lease.
 */
export async function compactDirtyMarkers(d: DiskBlobs, signal?: AbortSignal): Promise<CompactionResult> {
    const replica = d.container.getPageBlobClient(replicaBlobNameOf(d));
    const sequence =
        (await replica.getProperties({ abortSignal: deadline(undefined, signal) })).blobSequenceNumber ?? 0;
    const result: CompactionResult = { indexed: false, markersFolded: 0, markersDeleted: 0 };
    const remove = async (name: string): Promise<void> => {
        await d.container.deleteBlob(name, { abortSignal: deadline(undefined, signal) }).catch((err: unknown) => {
            if (!isNotFound(err)) throw err;
        });
        result.markersDeleted++;
    };
    const markers: Array<{ name: string; n: number; etag?: string }> = [];
    for await (const item of d.container.listBlobsFlat({
        prefix: markerPrefix(d),
        abortSignal: deadline(undefined, signal),
    })) {
        const n = markerSequence(d, item.name);
        if (n !== undefined && n <= sequence) markers.push({ name: item.name, n, etag: item.properties.etag });
    }
    if (markers.length === 0) return result;

    let index: DigestIndex | undefined;
    try {
        index = await DigestIndex.open(d, signal);
    } catch (err) {
        if (!(err instanceof HvrError && err.code === 'RESYNC_INDEX_INVALID')) throw err;
    }
    if (!index) {
        for (const m of markers) await remove(m.name);
        return result;
    }
    result.indexed = true;
    return withLease(index.blob, signal, async () => {
        // The header as of the lease: a refresh may have finished between the open and the lease.
        const current = await DigestIndex.open(d, signal);
        if (!current) return result;
        const applied = current.header.appliedSequence;
        const fold = markers.filter((m) => m.n > applied).sort((a, b) => a.n - b.n);
        for (const m of markers) if (m.n <= applied) await remove(m.name);
        if (fold.length < 2) return result;
        const logs: ByteRange[] = [];
        const ranges: ByteRange[] = [];
        for (const m of fold) {
            const body = await d.container
                .getBlockBlobClient(m.name)
                .downloadToBuffer(0, undefined, { abortSignal: deadline(undefined, signal) });
            const marker = await parseMarker(body, m.name, m.n);
            logs.push(...marker.logs);
            ranges.push(...marker.ranges);
        }
        const top = fold[fold.length - 1]!;
        const body = await encodeMarker(
            top.n,
            mergeByteRanges(logs),
            widenRanges(ranges, current.geometry.leafSize, MAX_COMPACTED_MARKER_RANGES),
        );
        try {
            await d.container.getBlockBlobClient(top.name).upload(body, body.length, {
                conditions: top.etag !== undefined ? { ifMatch: top.etag } : {},
                abortSignal: deadline(undefined, signal),
            });
        } catch (err) {
            if (err instanceof RestError && (err.statusCode === 412 || err.statusCode === 404)) {
                throw new HvrError('CONCURRENT_UPDATE', `dirty marker ${top.name} changed during its compaction`);
            }
            throw err;
        }
        for (const m of fold.slice(0, -1)) await remove(m.name);
        result.markersFolded = fold.length;
        result.compactedInto = top.name;
        return result;
    });
}

/** `ranges` widened to whole `unit`s and merged, then joined across ever larger gaps until at most `max` remain. */
export function widenRanges(ranges: readonly ByteRange[], unit: number, max: number): ByteRange[] {
    let out = mergeByteRanges(
        ranges.map((r) => {
            const start = Math.floor(r.offset / unit) * unit;
            return { offset: start, length: Math.ceil((r.offset + r.length) / unit) * unit - start };
        }),
    );
    for (let gap = unit; out.length > max; gap *= 2) out = mergeByteRanges(out, gap);
    return out;
}
