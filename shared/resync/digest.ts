import { randomBytes } from 'node:crypto';
import { createXXHash128, IHasher } from 'hash-wasm';
import { HvrError } from '../errors';

/**
 * The resync digest tree. A disk is cut into leaves of `leafSize` bytes (4 KiB: the cluster size guests write in);
 * `fanout` consecutive nodes of one level make one node of the level above; level 0 is the coarsest (1 MiB with
 * the defaults), level `levels - 1` the leaves. A leaf's digest is XXH3-128 of its bytes; a node's digest is
 * XXH3-128 of its children's digests, concatenated in order. Both use the resync's 64-bit seed, and digests are
 * the 16-byte canonical (big-endian) form. Because upper levels are computed from digests, not data, the cloud
 * can keep every level current from the leaves that changed, without re-reading whole coarse blocks.
 */
export const DIGEST_BYTES = 16;
export const DEFAULT_LEAF_SIZE = 4096;
export const DEFAULT_FANOUT = 16;
export const DEFAULT_LEVELS = 3;
/** Azure's largest page blob; node indexes are 32-bit in the manifest, which this keeps within range. */
export const MAX_DISK_SIZE = 8 * 1024 ** 4;

export interface DigestGeometry {
    /** Bytes of disk data, a multiple of 512. */
    diskSize: number;
    leafSize: number;
    fanout: number;
    levels: number;
}

/** A run of consecutive nodes of one level. */
export interface NodeRange {
    first: number;
    count: number;
}

/** A run of disk bytes. */
export interface ByteRange {
    offset: number;
    length: number;
}

function geometryError(message: string, details: Record<string, unknown>): HvrError {
    return new HvrError('RESYNC_MANIFEST_INVALID', message, details);
}

/** Checks a geometry, throwing RESYNC_MANIFEST_INVALID naming the bad value. */
export function validateGeometry(g: DigestGeometry): DigestGeometry {
    const { diskSize, leafSize, fanout, levels } = g;
    if (!Number.isSafeInteger(diskSize) || diskSize <= 0 || diskSize % 512 !== 0 || diskSize > MAX_DISK_SIZE) {
        throw geometryError(`disk size ${diskSize} must be a positive multiple of 512 up to 8 TiB`, { diskSize });
    }
    if (!Number.isSafeInteger(leafSize) || leafSize < 512 || leafSize > 1024 * 1024 || leafSize % 512 !== 0) {
        throw geometryError(`leaf size ${leafSize} must be a multiple of 512 between 512 and 1 MiB`, { leafSize });
    }
    if (!Number.isSafeInteger(fanout) || fanout < 2 || fanout > 1024) {
        throw geometryError(`fanout ${fanout} must be between 2 and 1024`, { fanout });
    }
    if (!Number.isSafeInteger(levels) || levels < 1 || levels > 6 || leafSize * fanout ** (levels - 1) > 2 ** 31) {
        throw geometryError(`levels ${levels} must be 1–6 with a coarsest block of at most 2 GiB`, { levels });
    }
    return g;
}

/** The default geometry (4 KiB leaves, fanout 16, three levels: 1 MiB, 64 KiB, 4 KiB) for a disk. */
export function defaultGeometry(diskSize: number): DigestGeometry {
    return validateGeometry({
        diskSize,
        leafSize: DEFAULT_LEAF_SIZE,
        fanout: DEFAULT_FANOUT,
        levels: DEFAULT_LEVELS,
    });
}

/** Bytes covered by one node of `level` (the last node of a level may cover fewer). */
export function blockSizeAt(g: DigestGeometry, level: number): number {
    return g.leafSize * g.fanout ** (g.levels - 1 - level);
}

/** Number of nodes at `level`. */
export function nodeCountAt(g: DigestGeometry, level: number): number {
    return Math.ceil(g.diskSize / blockSizeAt(g, level));
}

/** The disk bytes a node covers. */
export function nodeBytes(g: DigestGeometry, level: number, index: number): ByteRange {
    const size = blockSizeAt(g, level);
    const offset = index * size;
    return { offset, length: Math.min(size, g.diskSize - offset) };
}

/** The children (at `level + 1`) of node `index` of `level`. */
export function childrenOf(g: DigestGeometry, level: number, index: number): NodeRange {
    const first = index * g.fanout;
    return { first, count: Math.min(g.fanout, nodeCountAt(g, level + 1) - first) };
}

/** Sorts and coalesces node ranges (overlapping or adjacent runs become one). */
export function coalesceNodeRanges(ranges: Iterable<NodeRange>): NodeRange[] {
    const sorted = [...ranges].filter((r) => r.count > 0).sort((a, b) => a.first - b.first);
    const out: NodeRange[] = [];
    for (const r of sorted) {
        const last = out[out.length - 1];
        if (last && r.first <= last.first + last.count) {
            last.count = Math.max(last.count, r.first + r.count - last.first);
        } else {
            out.push({ first: r.first, count: r.count });
        }
    }
    return out;
}

/** The seed of one resync: 64 bits, unknown to the guest until the comparison runs. */
export type DigestSeed = bigint;

export function randomDigestSeed(): DigestSeed {
    return randomBytes(8).readBigUInt64LE(0);
}

export function seedToHex(seed: DigestSeed): string {
    return seed.toString(16).padStart(16, '0');
}

export function seedFromHex(hex: string): DigestSeed {
    if (!/^[0-9a-f]{16}$/i.test(hex)) {
        throw new HvrError('RESYNC_REQUEST_INVALID', `digest seed must be 16 hex digits; got "${hex}"`, { seed: hex });
    }
    return BigInt(`0x${hex}`);
}

function seedHalves(seed: DigestSeed): [number, number] {
    if (seed < 0n || seed >= 1n << 64n) throw new RangeError(`seed ${seed} is not a 64-bit unsigned integer`);
    return [Number(seed & 0xffffffffn), Number(seed >> 32n)];
}

let checksumHasher: Promise<IHasher> | undefined;

/** XXH3-128 with seed 0, the integrity checksum of manifests and index headers. */
export async function checksum128(parts: readonly Uint8Array[]): Promise<Buffer> {
    checksumHasher ??= createXXHash128(0, 0);
    const h = await checksumHasher;
    h.init();
    for (const p of parts) h.update(p);
    return Buffer.from(h.digest('binary'));
}

/**
 * Computes digests for one seed. Synchronous once created, so a loop over a buffer never yields mid-hash
 * (hash-wasm hashers are stateful). All-zero leaves are recognised by a comparison, not hashed.
 */
export class Digester {
    private readonly zeroLeaf: Buffer;
    private readonly zeroCache = new Map<string, Buffer>();

    private constructor(
        readonly seed: DigestSeed,
        private readonly hasher: IHasher,
        readonly geometry: DigestGeometry,
    ) {
        this.zeroLeaf = Buffer.alloc(geometry.leafSize);
    }

    static async create(seed: DigestSeed, geometry: DigestGeometry): Promise<Digester> {
        validateGeometry(geometry);
        const [low, high] = seedHalves(seed);
        return new Digester(seed, await createXXHash128(low, high), geometry);
    }

    /** XXH3-128 of `data` with this seed, written at `out[at]`. */
    hashInto(data: Uint8Array, out: Uint8Array, at: number): void {
        out.set(this.hasher.init().update(data).digest('binary'), at);
    }

    /** The digest of a leaf's bytes, written at `out[at]`; `data` is the whole leaf (shorter only at the end). */
    leafInto(data: Buffer, out: Uint8Array, at: number): void {
        if (data.length === this.zeroLeaf.length && data.equals(this.zeroLeaf)) {
            out.set(this.zeroDigest(this.geometry.levels - 1, 0), at);
        } else {
            this.hashInto(data, out, at);
        }
    }

    /** The digest of node `index` of `level` when every byte under it is zero (computed, never read). */
    zeroDigest(level: number, index: number): Buffer {
        const length = nodeBytes(this.geometry, level, index).length;
        const key = `${level}:${length}`;
        let digest = this.zeroCache.get(key);
        if (!digest) {
            digest = Buffer.alloc(DIGEST_BYTES);
            if (level === this.geometry.levels - 1) {
                this.hashInto(Buffer.alloc(length), digest, 0);
            } else {
                const children = childrenOf(this.geometry, level, index);
                const concat = Buffer.alloc(children.count * DIGEST_BYTES);
                for (let i = 0; i < children.count; i++) {
                    concat.set(this.zeroDigest(level + 1, children.first + i), i * DIGEST_BYTES);
                }
                this.hashInto(concat, digest, 0);
            }
            this.zeroCache.set(key, digest);
        }
        return digest;
    }

    /** Whether `digest` (16 bytes at `at`) is the zero digest of that node. */
    isZeroDigest(level: number, index: number, digests: Uint8Array, at: number): boolean {
        const zero = this.zeroDigest(level, index);
        for (let i = 0; i < DIGEST_BYTES; i++) if (digests[at + i] !== zero[i]) return false;
        return true;
    }

    /**
     * Every level's digests for the nodes under coarsest node `top`, from its bytes (`data` covers exactly that
     * node). `levels[k]` holds the digests of the subtree's nodes at level k, in order.
     */
    subtree(top: number, data: Buffer): Uint8Array[] {
        const g = this.geometry;
        const span = nodeBytes(g, 0, top);
        if (data.length !== span.length) {
            throw new RangeError(`coarse block ${top} has ${span.length} bytes; got ${data.length}`);
        }
        const levels: Uint8Array[] = new Array<Uint8Array>(g.levels);
        const leafLevel = g.levels - 1;
        const leafCount = Math.ceil(data.length / g.leafSize);
        const leaves = new Uint8Array(leafCount * DIGEST_BYTES);
        for (let i = 0; i < leafCount; i++) {
            this.leafInto(data.subarray(i * g.leafSize, (i + 1) * g.leafSize), leaves, i * DIGEST_BYTES);
        }
        levels[leafLevel] = leaves;
        for (let level = leafLevel - 1; level >= 0; level--) {
            levels[level] = this.parents(levels[level + 1]!);
        }
        return levels;
    }

    /** The digests of the nodes whose children's digests are `children` (consecutive, starting at a boundary). */
    parents(children: Uint8Array): Uint8Array {
        const childCount = children.length / DIGEST_BYTES;
        const count = Math.ceil(childCount / this.geometry.fanout);
        const out = new Uint8Array(count * DIGEST_BYTES);
        const stride = this.geometry.fanout * DIGEST_BYTES;
        for (let i = 0; i < count; i++) {
            this.hashInto(
                children.subarray(i * stride, Math.min((i + 1) * stride, children.length)),
                out,
                i * DIGEST_BYTES,
            );
        }
        return out;
    }
}
