import { HvrError } from '../errors';
import {
    blockSizeAt,
    checksum128,
    DIGEST_BYTES,
    DigestGeometry,
    Digester,
    DigestSeed,
    NodeRange,
    nodeCountAt,
    validateGeometry,
} from './digest';

/**
 * The digest manifest: the digests of some nodes of one level of a disk's digest tree, as the cloud publishes them
 * for the provider. Byte layout (little-endian), documented in docs/resync.md:
 *
 *   0   8  magic "HVRDIGST"          32   8  seed (u64)
 *   8   2  version = 1               40   4  rangeCount R
 *  10   2  header size = 64          44   4  nodeCount N (sum of the ranges' counts)
 *  12   1  level (0 = coarsest)      48   4  digestCount D (nodes not flagged zero)
 *  13   1  levels                    52   4  round (1 for the coarsest level, then 2, 3, ...)
 *  14   2  fanout                    56   8  reserved, 0
 *  16   4  leaf size
 *  20   4  block size of `level`
 *  24   8  disk size
 *
 * then R ranges (u32 first node, u32 count), ascending, disjoint and not adjacent; then the zero bitmap,
 * ceil(N / 8) bytes, bit i (LSB first) set when the i-th node listed is all zeros; then D digests of 16 bytes,
 * in node order, skipping the zero nodes; then XXH3-128 (seed 0) of everything before it.
 */
export const MANIFEST_MAGIC = Buffer.from('HVRDIGST', 'ascii');
export const MANIFEST_VERSION = 1;
export const MANIFEST_HEADER_SIZE = 64;
export const MANIFEST_TRAILER_SIZE = 16;
const RANGE_BYTES = 8;

/** A manifest, parsed and checked. */
export interface DigestManifest {
    geometry: DigestGeometry;
    seed: DigestSeed;
    level: number;
    round: number;
    ranges: NodeRange[];
    nodeCount: number;
    /** Bit i set: the i-th node listed is all zeros. */
    zeroBitmap: Uint8Array;
    /** The non-zero nodes' digests, in node order. */
    digests: Uint8Array;
}

function invalid(message: string, details: Record<string, unknown> = {}): HvrError {
    return new HvrError('RESYNC_MANIFEST_INVALID', `digest manifest: ${message}`, details);
}

function isAllZero(bytes: Uint8Array, at: number, length: number): boolean {
    for (let i = 0; i < length; i++) if (bytes[at + i] !== 0) return false;
    return true;
}

function checkRanges(ranges: readonly NodeRange[], limit: number, what: string, err: typeof invalid): number {
    let total = 0;
    let end = -1;
    for (const [i, r] of ranges.entries()) {
        if (!Number.isSafeInteger(r.first) || !Number.isSafeInteger(r.count) || r.count < 1 || r.first < 0) {
            throw err(`${what} range ${i} (first ${r.first}, count ${r.count}) is not a run of nodes`, { range: i });
        }
        if (r.first <= end) {
            throw err(`${what} range ${i} starts at node ${r.first}, not after the previous range ends (${end})`, {
                range: i,
            });
        }
        end = r.first + r.count;
        if (end > limit) {
            throw err(`${what} range ${i} ends at node ${end}, past the ${limit} nodes of its level`, { range: i });
        }
        total += r.count;
    }
    return total;
}

/**
 * Encodes a manifest. `digests` holds one 16-byte slot per node listed, in order; a slot of 16 zero bytes, or
 * one equal to the node's zero digest when `digester` is given, marks the node as all zeros.
 */
export async function encodeManifest(
    m: { geometry: DigestGeometry; seed: DigestSeed; level: number; round: number; ranges: NodeRange[] },
    digests: Uint8Array,
    digester?: Digester,
): Promise<Buffer> {
    const g = validateGeometry(m.geometry);
    if (!Number.isInteger(m.level) || m.level < 0 || m.level >= g.levels)
        throw invalid(`level ${m.level} out of range`);
    const nodeCount = checkRanges(m.ranges, nodeCountAt(g, m.level), 'manifest', invalid);
    if (nodeCount > 0xffffffff || m.ranges.length > 0xffffffff) throw invalid(`too many nodes (${nodeCount})`);
    if (digests.length !== nodeCount * DIGEST_BYTES) {
        throw invalid(`expected ${nodeCount} digests, got ${digests.length / DIGEST_BYTES}`);
    }
    const zeroBitmap = Buffer.alloc(Math.ceil(nodeCount / 8));
    let ordinal = 0;
    let digestCount = 0;
    for (const r of m.ranges) {
        for (let index = r.first; index < r.first + r.count; index++, ordinal++) {
            const at = ordinal * DIGEST_BYTES;
            const zero =
                isAllZero(digests, at, DIGEST_BYTES) ||
                (digester !== undefined && digester.isZeroDigest(m.level, index, digests, at));
            if (zero) zeroBitmap[ordinal >> 3]! |= 1 << (ordinal & 7);
            else digestCount++;
        }
    }
    const size =
        MANIFEST_HEADER_SIZE +
        m.ranges.length * RANGE_BYTES +
        zeroBitmap.length +
        digestCount * DIGEST_BYTES +
        MANIFEST_TRAILER_SIZE;
    const out = Buffer.alloc(size);
    MANIFEST_MAGIC.copy(out, 0);
    out.writeUInt16LE(MANIFEST_VERSION, 8);
    out.writeUInt16LE(MANIFEST_HEADER_SIZE, 10);
    out.writeUInt8(m.level, 12);
    out.writeUInt8(g.levels, 13);
    out.writeUInt16LE(g.fanout, 14);
    out.writeUInt32LE(g.leafSize, 16);
    out.writeUInt32LE(blockSizeAt(g, m.level), 20);
    out.writeBigUInt64LE(BigInt(g.diskSize), 24);
    out.writeBigUInt64LE(m.seed, 32);
    out.writeUInt32LE(m.ranges.length, 40);
    out.writeUInt32LE(nodeCount, 44);
    out.writeUInt32LE(digestCount, 48);
    out.writeUInt32LE(m.round, 52);
    let pos = MANIFEST_HEADER_SIZE;
    for (const r of m.ranges) {
        out.writeUInt32LE(r.first, pos);
        out.writeUInt32LE(r.count, pos + 4);
        pos += RANGE_BYTES;
    }
    zeroBitmap.copy(out, pos);
    pos += zeroBitmap.length;
    for (let i = 0; i < nodeCount; i++) {
        if (zeroBitmap[i >> 3]! & (1 << (i & 7))) continue;
        out.set(digests.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES), pos);
        pos += DIGEST_BYTES;
    }
    (await checksum128([out.subarray(0, pos)])).copy(out, pos);
    return out;
}

/** Parses and checks a manifest: every field bounded, the size exact, the checksum right. */
export async function parseManifest(bytes: Uint8Array): Promise<DigestManifest> {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buf.length < MANIFEST_HEADER_SIZE + MANIFEST_TRAILER_SIZE) {
        throw invalid(`${buf.length} bytes is shorter than a header and checksum (80)`, { size: buf.length });
    }
    if (!buf.subarray(0, 8).equals(MANIFEST_MAGIC)) {
        throw invalid(`bad magic ${JSON.stringify(buf.subarray(0, 8).toString('latin1'))} at offset 0`, { offset: 0 });
    }
    const version = buf.readUInt16LE(8);
    if (version !== MANIFEST_VERSION) throw invalid(`unsupported version ${version} at offset 8`, { offset: 8 });
    const headerSize = buf.readUInt16LE(10);
    if (headerSize !== MANIFEST_HEADER_SIZE) {
        throw invalid(`header size ${headerSize} at offset 10, expected ${MANIFEST_HEADER_SIZE}`, { offset: 10 });
    }
    const expected = await checksum128([buf.subarray(0, buf.length - MANIFEST_TRAILER_SIZE)]);
    if (!expected.equals(buf.subarray(buf.length - MANIFEST_TRAILER_SIZE))) {
        throw invalid(`checksum at offset ${buf.length - MANIFEST_TRAILER_SIZE} does not match the content`, {
            offset: buf.length - MANIFEST_TRAILER_SIZE,
        });
    }
    const level = buf.readUInt8(12);
    const diskSize = buf.readBigUInt64LE(24);
    if (diskSize > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`disk size ${diskSize} at offset 24 is too large`);
    let geometry: DigestGeometry;
    try {
        geometry = validateGeometry({
            diskSize: Number(diskSize),
            leafSize: buf.readUInt32LE(16),
            fanout: buf.readUInt16LE(14),
            levels: buf.readUInt8(13),
        });
    } catch (err) {
        throw invalid(`geometry at offsets 13–31: ${(err as Error).message}`);
    }
    if (level >= geometry.levels) throw invalid(`level ${level} at offset 12 is not below levels ${geometry.levels}`);
    const blockSize = buf.readUInt32LE(20);
    if (blockSize !== blockSizeAt(geometry, level)) {
        throw invalid(`block size ${blockSize} at offset 20 is not ${blockSizeAt(geometry, level)} for level ${level}`);
    }
    if (buf.readBigUInt64LE(56) !== 0n) throw invalid('reserved bytes at offset 56 are not zero', { offset: 56 });
    const rangeCount = buf.readUInt32LE(40);
    const nodeCount = buf.readUInt32LE(44);
    const digestCount = buf.readUInt32LE(48);
    const round = buf.readUInt32LE(52);
    if (round < 1) throw invalid(`round ${round} at offset 52 must be at least 1`);
    const bitmapBytes = Math.ceil(nodeCount / 8);
    const size =
        MANIFEST_HEADER_SIZE +
        rangeCount * RANGE_BYTES +
        bitmapBytes +
        digestCount * DIGEST_BYTES +
        MANIFEST_TRAILER_SIZE;
    if (digestCount > nodeCount || size !== buf.length) {
        throw invalid(
            `${buf.length} bytes do not hold ${rangeCount} ranges, ${nodeCount} nodes and ${digestCount} digests (${size} bytes)`,
            { size: buf.length },
        );
    }
    const ranges: NodeRange[] = [];
    for (let i = 0; i < rangeCount; i++) {
        const at = MANIFEST_HEADER_SIZE + i * RANGE_BYTES;
        ranges.push({ first: buf.readUInt32LE(at), count: buf.readUInt32LE(at + 4) });
    }
    const listed = checkRanges(ranges, nodeCountAt(geometry, level), 'manifest', invalid);
    if (listed !== nodeCount) throw invalid(`ranges list ${listed} nodes, header at offset 44 says ${nodeCount}`);
    const bitmapAt = MANIFEST_HEADER_SIZE + rangeCount * RANGE_BYTES;
    const zeroBitmap = new Uint8Array(buf.subarray(bitmapAt, bitmapAt + bitmapBytes));
    let zeros = 0;
    for (const byte of zeroBitmap) {
        let b = byte;
        while (b) {
            zeros += b & 1;
            b >>= 1;
        }
    }
    if (nodeCount % 8 !== 0 && bitmapBytes > 0 && zeroBitmap[bitmapBytes - 1]! >> (nodeCount % 8) !== 0) {
        throw invalid(`zero bitmap has bits set past node ${nodeCount} at offset ${bitmapAt + bitmapBytes - 1}`);
    }
    if (nodeCount - zeros !== digestCount) {
        throw invalid(`zero bitmap leaves ${nodeCount - zeros} digests, header at offset 48 says ${digestCount}`);
    }
    const digestsAt = bitmapAt + bitmapBytes;
    return {
        geometry,
        seed: buf.readBigUInt64LE(32),
        level,
        round,
        ranges,
        nodeCount,
        zeroBitmap,
        digests: new Uint8Array(buf.subarray(digestsAt, digestsAt + digestCount * DIGEST_BYTES)),
    };
}

/**
 * Walks a manifest's nodes in order: `visit(index, digest)` gets the node's target digest, the computed zero
 * digest for nodes flagged zero (`zero` true).
 */
export function forEachManifestNode(
    m: DigestManifest,
    digester: Digester,
    visit: (index: number, digest: Uint8Array, zero: boolean) => void,
): void {
    let ordinal = 0;
    let digestAt = 0;
    for (const r of m.ranges) {
        for (let index = r.first; index < r.first + r.count; index++, ordinal++) {
            if (m.zeroBitmap[ordinal >> 3]! & (1 << (ordinal & 7))) {
                visit(index, digester.zeroDigest(m.level, index), true);
            } else {
                visit(index, m.digests.subarray(digestAt, digestAt + DIGEST_BYTES), false);
                digestAt += DIGEST_BYTES;
            }
        }
    }
}

/** What the provider asks for next: the digests of these nodes of `level`. */
export interface DigestRequest {
    level: number;
    ranges: NodeRange[];
}

function requestInvalid(message: string, details: Record<string, unknown> = {}): HvrError {
    return new HvrError('RESYNC_REQUEST_INVALID', `digest request: ${message}`, details);
}

function writeVarint(out: number[], value: number): void {
    let v = value;
    while (v >= 0x80) {
        out.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
    }
    out.push(v);
}

/**
 * Encodes a request compactly for a message: byte 0 the level, then varints (LEB128): the range count, then per
 * range the gap since the previous range's end (the first node for the first range) and the count.
 */
export function encodeDigestRequest(request: DigestRequest): Buffer {
    const out: number[] = [request.level];
    writeVarint(out, request.ranges.length);
    let end = 0;
    for (const r of request.ranges) {
        writeVarint(out, r.first - end);
        writeVarint(out, r.count);
        end = r.first + r.count;
    }
    return Buffer.from(out);
}

/** Decodes and checks a request against the disk's geometry (levels and node counts). */
export function decodeDigestRequest(bytes: Uint8Array, geometry: DigestGeometry): DigestRequest {
    let pos = 0;
    const readVarint = (): number => {
        let value = 0;
        let scale = 1;
        for (;;) {
            if (pos >= bytes.length) throw requestInvalid(`truncated at byte ${pos}`, { offset: pos });
            const b = bytes[pos++]!;
            value += (b & 0x7f) * scale;
            if (value > Number.MAX_SAFE_INTEGER) throw requestInvalid(`varint too large at byte ${pos}`);
            if (!(b & 0x80)) return value;
            scale *= 0x80;
        }
    };
    if (bytes.length < 2) throw requestInvalid(`${bytes.length} bytes is too short`);
    const level = bytes[pos++]!;
    if (level >= geometry.levels) throw requestInvalid(`level ${level} is not below levels ${geometry.levels}`);
    const count = readVarint();
    const limit = nodeCountAt(geometry, level);
    if (count > limit) throw requestInvalid(`${count} ranges is more than the ${limit} nodes of level ${level}`);
    const ranges: NodeRange[] = [];
    let end = 0;
    for (let i = 0; i < count; i++) {
        const first = end + readVarint();
        const n = readVarint();
        ranges.push({ first, count: n });
        end = first + n;
    }
    if (pos !== bytes.length) throw requestInvalid(`${bytes.length - pos} trailing bytes at byte ${pos}`);
    checkRanges(ranges, limit, 'request', requestInvalid);
    if (ranges.some((r, i) => i > 0 && r.first === ranges[i - 1]!.first + ranges[i - 1]!.count)) {
        throw requestInvalid('ranges must be coalesced (adjacent ranges found)');
    }
    return { level, ranges };
}
