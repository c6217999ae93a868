import { HvrError } from '../../../shared/errors';
import {
    checksum128,
    coalesceNodeRanges,
    defaultGeometry,
    DIGEST_BYTES,
    Digester,
    seedFromHex,
    seedToHex,
} from '../../../shared/resync/digest';
import {
    decodeDigestRequest,
    encodeDigestRequest,
    encodeManifest,
    forEachManifestNode,
    MANIFEST_HEADER_SIZE,
    parseManifest,
} from '../../../shared/resync/manifest';

const MiB = 1024 * 1024;
const geometry = defaultGeometry(4 * MiB);

function digestsOf(count: number, zeroAt: number[] = []): Uint8Array {
    const out = new Uint8Array(count * DIGEST_BYTES);
    for (let i = 0; i < count; i++) {
        if (zeroAt.includes(i)) continue;
        out.fill((i % 250) + 1, i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
    }
    return out;
}

/** Recomputes the trailing checksum after a test edits a field, so the parser reaches the field's own check. */
async function reseal(buf: Buffer): Promise<Buffer> {
    const copy = Buffer.from(buf);
    (await checksum128([copy.subarray(0, copy.length - 16)])).copy(copy, copy.length - 16);
    return copy;
}

async function expectInvalid(bytes: Uint8Array, pattern: RegExp): Promise<void> {
    let caught: unknown;
    try {
        await parseManifest(bytes);
    } catch (err) {
        caught = err;
    }
    expect(caught).toBeInstanceOf(HvrError);
    expect((caught as HvrError).code).toBe('RESYNC_MANIFEST_INVALID');
    expect((caught as HvrError).message).toMatch(pattern);
}

describe('digest manifest', () => {
    const seed = 0x0123456789abcdefn;
    const ranges = [
        { first: 2, count: 3 },
        { first: 40, count: 16 },
    ];

    it('round-trips, flagging zero nodes instead of listing their digests', async () => {
        const slots = digestsOf(19, [1, 7]);
        const bytes = await encodeManifest({ geometry, seed, level: 1, round: 2, ranges }, slots);
        expect(bytes.length).toBe(MANIFEST_HEADER_SIZE + 2 * 8 + 3 + 17 * DIGEST_BYTES + 16);
        const m = await parseManifest(bytes);
        expect(m).toMatchObject({ geometry, seed, level: 1, round: 2, ranges, nodeCount: 19 });
        const digester = await Digester.create(seed, geometry);
        const seen: [number, boolean][] = [];
        forEachManifestNode(m, digester, (index, digest, zero) => {
            seen.push([index, zero]);
            if (!zero) expect(digest[0]).toBe(seen.length === 0 ? 1 : ((seen.length - 1) % 250) + 1);
            else expect(Buffer.from(digest).equals(digester.zeroDigest(1, index))).toBe(true);
        });
        expect(seen.map(([i]) => i)).toEqual([2, 3, 4, ...Array.from({ length: 16 }, (_, i) => 40 + i)]);
        expect(seen.filter(([, z]) => z).map(([i]) => i)).toEqual([3, 44]);
    });

    it('recognises computed zero digests as zero nodes when given the digester', async () => {
        const digester = await Digester.create(seed, geometry);
        const slots = digestsOf(4);
        slots.set(digester.zeroDigest(0, 2), 2 * DIGEST_BYTES);
        const bytes = await encodeManifest(
            { geometry, seed, level: 0, round: 1, ranges: [{ first: 0, count: 4 }] },
            slots,
            digester,
        );
        const m = await parseManifest(bytes);
        expect(m.zeroBitmap[0]).toBe(0b100);
        expect(m.digests.length).toBe(3 * DIGEST_BYTES);
    });

    it('refuses to encode ranges that overlap, touch or run past the level', async () => {
        const encode = (r: { first: number; count: number }[], n: number): Promise<Buffer> =>
            encodeManifest({ geometry, seed, level: 0, round: 1, ranges: r }, digestsOf(n));
        await expect(encode([{ first: 3, count: 2 }], 2)).rejects.toThrow(/past the 4 nodes/);
        await expect(
            encode(
                [
                    { first: 0, count: 2 },
                    { first: 2, count: 1 },
                ],
                3,
            ),
        ).rejects.toThrow(/not after/);
        await expect(encode([{ first: 0, count: 2 }], 3)).rejects.toThrow(/expected 2 digests/);
    });

    describe('parser', () => {
        let good: Buffer;
        beforeAll(async () => {
            good = await encodeManifest({ geometry, seed, level: 1, round: 2, ranges }, digestsOf(19, [1]));
        });

        it('rejects a truncated manifest, naming the size', async () => {
            await expectInvalid(good.subarray(0, 40), /40 bytes is shorter/);
            await expectInvalid(good.subarray(0, good.length - 1), /checksum|do not hold/);
        });

        it('rejects bad magic, version and header size, naming the offset', async () => {
            const b = Buffer.from(good);
            b.write('NOTMAGIC', 0, 'ascii');
            await expectInvalid(b, /bad magic .* at offset 0/);
            const v = Buffer.from(good);
            v.writeUInt16LE(2, 8);
            await expectInvalid(v, /version 2 at offset 8/);
            const h = Buffer.from(good);
            h.writeUInt16LE(32, 10);
            await expectInvalid(h, /header size 32 at offset 10/);
        });

        it('rejects any change to the content through the checksum', async () => {
            const b = Buffer.from(good);
            b[good.length - 30]! ^= 1;
            await expectInvalid(b, /checksum at offset \d+ does not match/);
        });

        it('checks every field even when the checksum was recomputed', async () => {
            const edit = async (f: (b: Buffer) => void): Promise<Buffer> => {
                const b = Buffer.from(good);
                f(b);
                return reseal(b);
            };
            await expectInvalid(await edit((b) => b.writeUInt8(3, 12)), /level 3 at offset 12/);
            await expectInvalid(await edit((b) => b.writeUInt32LE(4096, 20)), /block size 4096 at offset 20/);
            await expectInvalid(await edit((b) => b.writeUInt32LE(1000, 16)), /geometry .*leaf size 1000/);
            await expectInvalid(await edit((b) => b.writeBigUInt64LE(1000n, 24)), /disk size 1000/);
            await expectInvalid(await edit((b) => b.writeUInt32LE(0, 52)), /round 0 at offset 52/);
            await expectInvalid(await edit((b) => b.writeUInt32LE(3, 40)), /do not hold 3 ranges/);
            await expectInvalid(await edit((b) => b.writeUInt32LE(200, 48)), /do not hold/);
            await expectInvalid(await edit((b) => b.writeBigUInt64LE(1n, 56)), /reserved bytes at offset 56/);
            // Second range moved onto the first.
            await expectInvalid(await edit((b) => b.writeUInt32LE(3, MANIFEST_HEADER_SIZE + 8)), /not after/);
            // Second range moved past the level's 64 nodes.
            await expectInvalid(await edit((b) => b.writeUInt32LE(60, MANIFEST_HEADER_SIZE + 8)), /past the 64 nodes/);
            // A zero bit more than digests missing.
            await expectInvalid(await edit((b) => (b[MANIFEST_HEADER_SIZE + 16]! |= 1)), /zero bitmap leaves 17/);
            // A bit past the last node (node 19 of 19).
            await expectInvalid(
                await edit((b) => (b[MANIFEST_HEADER_SIZE + 16 + 2]! |= 0x80)),
                /bits set past node 19/,
            );
        });
    });
});

describe('digest requests', () => {
    it('round-trip compactly', () => {
        const request = {
            level: 2,
            ranges: [
                { first: 16, count: 16 },
                { first: 900, count: 32 },
            ],
        };
        const bytes = encodeDigestRequest(request);
        expect(bytes.length).toBeLessThan(12);
        expect(decodeDigestRequest(bytes, geometry)).toEqual(request);
    });

    it('reject levels, nodes and trailing bytes the disk does not have', () => {
        const err = (bytes: Buffer): string => {
            try {
                decodeDigestRequest(bytes, geometry);
            } catch (e) {
                expect((e as HvrError).code).toBe('RESYNC_REQUEST_INVALID');
                return (e as Error).message;
            }
            throw new Error('accepted');
        };
        expect(err(encodeDigestRequest({ level: 3, ranges: [{ first: 0, count: 1 }] }))).toMatch(/level 3/);
        expect(err(encodeDigestRequest({ level: 0, ranges: [{ first: 3, count: 2 }] }))).toMatch(/past the 4 nodes/);
        expect(
            err(Buffer.concat([encodeDigestRequest({ level: 0, ranges: [{ first: 0, count: 1 }] }), Buffer.from([0])])),
        ).toMatch(/trailing/);
        expect(err(Buffer.from([1, 5, 0x80]))).toMatch(/truncated/);
        expect(
            err(
                encodeDigestRequest({
                    level: 1,
                    ranges: [
                        { first: 0, count: 2 },
                        { first: 2, count: 2 },
                    ],
                }),
            ),
        ).toMatch(/not after|coalesced/);
    });
});

describe('digest tree', () => {
    it('keeps seeds as 16 hex digits and refuses anything else', () => {
        expect(seedToHex(0xabn)).toBe('00000000000000ab');
        expect(seedFromHex('ffffffffffffffff')).toBe(0xffffffffffffffffn);
        expect(() => seedFromHex('xyz')).toThrow(HvrError);
    });

    it('makes a node digest the hash of its children, so one changed leaf changes exactly its ancestors', async () => {
        const digester = await Digester.create(42n, defaultGeometry(MiB));
        const data = Buffer.alloc(MiB, 7);
        const before = digester.subtree(0, data);
        const changed = Buffer.from(data);
        changed[5 * 4096 + 100] = 8;
        const after = digester.subtree(0, changed);
        const diff = (a: Uint8Array, b: Uint8Array): number[] => {
            const out: number[] = [];
            for (let i = 0; i < a.length / 16; i++) {
                if (!Buffer.from(a.subarray(i * 16, i * 16 + 16)).equals(b.subarray(i * 16, i * 16 + 16))) out.push(i);
            }
            return out;
        };
        expect(diff(before[2]!, after[2]!)).toEqual([5]);
        expect(diff(before[1]!, after[1]!)).toEqual([0]);
        expect(diff(before[0]!, after[0]!)).toEqual([0]);
        const recomputed = Buffer.alloc(16);
        digester.hashInto(after[2]!.subarray(0, 16 * 16), recomputed, 0);
        expect(recomputed.equals(after[1]!.subarray(0, 16))).toBe(true);
    });

    it('computes zero digests without data that equal hashing zeros, and differ per seed', async () => {
        const g = defaultGeometry(MiB + 8192);
        const a = await Digester.create(1n, g);
        const b = await Digester.create(2n, g);
        const sub = a.subtree(1, Buffer.alloc(8192));
        expect(Buffer.from(sub[0]!).equals(a.zeroDigest(0, 1))).toBe(true);
        expect(Buffer.from(a.subtree(0, Buffer.alloc(MiB))[0]!).equals(a.zeroDigest(0, 0))).toBe(true);
        expect(a.zeroDigest(0, 0).equals(a.zeroDigest(0, 1))).toBe(false);
        expect(a.zeroDigest(2, 0).equals(b.zeroDigest(2, 0))).toBe(false);
    });

    it('coalesces node ranges', () => {
        expect(
            coalesceNodeRanges([
                { first: 10, count: 2 },
                { first: 0, count: 3 },
                { first: 3, count: 1 },
                { first: 11, count: 5 },
            ]),
        ).toEqual([
            { first: 0, count: 4 },
            { first: 10, count: 6 },
        ]);
    });
});
