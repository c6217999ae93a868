import { randomBytes } from 'node:crypto';
import { HvrError } from '../../../shared/errors';
import { ByteRange, defaultGeometry, Digester, DigestGeometry } from '../../../shared/resync/digest';
import { ByteSource, ProviderComparison, writeDifferingBlocks } from '../../../shared/resync/provider';
import { digestTreeOf, manifestFromTree, rootDigestOf } from '../../../shared/resync/tree';

const KiB = 1024;
const MiB = 1024 * KiB;

function memorySource(buf: Buffer): ByteSource & { bytesRead: number } {
    const s = {
        size: buf.length,
        bytesRead: 0,
        read(offset: number, length: number): Promise<Buffer> {
            if (offset + length > buf.length) return Promise.reject(new RangeError('past end'));
            s.bytesRead += length;
            return Promise.resolve(buf.subarray(offset, offset + length));
        },
    };
    return s;
}

/** Runs the whole exchange against an in-memory cloud tree; returns the differing ranges and the comparison. */
async function resync(
    target: Buffer,
    source: Buffer,
    options: { seed?: bigint; maxRetainedDigestBytes?: number; geometry?: DigestGeometry } = {},
): Promise<{ ranges: ByteRange[]; cmp: ProviderComparison; targetRoot: Buffer }> {
    const digester = await Digester.create(options.seed ?? 99n, options.geometry ?? defaultGeometry(target.length));
    const tree = await digestTreeOf(memorySource(target), digester);
    const tops = tree[0]!.length / 16;
    const first = await manifestFromTree(tree, digester, 0, 1, [{ first: 0, count: tops }]);
    const cmp = await ProviderComparison.begin(memorySource(source), first, {
        maxRetainedDigestBytes: options.maxRetainedDigestBytes,
        readChunkBytes: 2 * MiB,
    });
    let round = 1;
    for (let req = cmp.nextRequest(); req; req = cmp.nextRequest()) {
        await cmp.compare(await manifestFromTree(tree, digester, req.level, ++round, req.ranges));
    }
    return { ranges: cmp.differingRanges(), cmp, targetRoot: rootDigestOf(tree, digester) };
}

function apply(target: Buffer, source: Buffer, ranges: ByteRange[]): Buffer {
    const out = Buffer.from(target);
    for (const r of ranges) source.copy(out, r.offset, r.offset, r.offset + r.length);
    return out;
}

function covered(ranges: ByteRange[]): number {
    return ranges.reduce((n, r) => n + r.length, 0);
}

describe('provider-side comparison', () => {
    const size = 8 * MiB;
    let target: Buffer;
    beforeAll(() => {
        target = randomBytes(size);
        target.fill(0, 5 * MiB, 7 * MiB); // a never-written stretch on the replica
    });

    it('finds nothing to send when source and replica are equal, in one round', async () => {
        const { ranges, cmp, targetRoot } = await resync(target, Buffer.from(target));
        expect(ranges).toEqual([]);
        expect(cmp.stats.rounds).toBe(1);
        expect(cmp.rootDigest.equals(targetRoot)).toBe(true);
    });

    it('sends exactly the changed 4 KiB blocks of scattered writes, descending level by level', async () => {
        const source = Buffer.from(target);
        const changed = [3, 700, 701, 1500, 2047];
        for (const leaf of changed) randomBytes(4 * KiB).copy(source, leaf * 4 * KiB);
        const { ranges, cmp, targetRoot } = await resync(target, source);
        expect(ranges).toEqual([
            { offset: 3 * 4 * KiB, length: 4 * KiB },
            { offset: 700 * 4 * KiB, length: 8 * KiB },
            { offset: 1500 * 4 * KiB, length: 4 * KiB },
            { offset: 2047 * 4 * KiB, length: 4 * KiB },
        ]);
        expect(cmp.stats.rounds).toBe(3);
        expect(cmp.rootDigest.equals(targetRoot)).toBe(false);
        expect(apply(target, source, ranges).equals(source)).toBe(true);
    });

    it('sends a one-byte change as its whole 4 KiB block', async () => {
        const source = Buffer.from(target);
        source[3 * MiB + 5000]! ^= 0xff;
        const { ranges } = await resync(target, source);
        expect(ranges).toEqual([{ offset: 3 * MiB + 4096, length: 4096 }]);
    });

    it('resolves data written where the replica has zeros without asking for finer digests', async () => {
        const source = Buffer.from(target);
        randomBytes(64 * KiB).copy(source, 5 * MiB + 128 * KiB);
        source.fill(1, 6 * MiB + 4096, 6 * MiB + 8192);
        const { ranges, cmp } = await resync(target, source);
        expect(ranges).toEqual([
            { offset: 5 * MiB + 128 * KiB, length: 64 * KiB },
            { offset: 6 * MiB + 4096, length: 4096 },
        ]);
        expect(cmp.stats.rounds).toBe(1);
    });

    it('sends zeros where the source was cleared', async () => {
        const source = Buffer.from(target);
        source.fill(0, 2 * MiB, 2 * MiB + 12 * KiB);
        const { ranges } = await resync(target, source);
        expect(ranges).toEqual([{ offset: 2 * MiB, length: 12 * KiB }]);
        expect(apply(target, source, ranges).equals(source)).toBe(true);
    });

    it('gives the same answer when no digests may be kept between rounds (re-reads the source)', async () => {
        const source = Buffer.from(target);
        for (let i = 0; i < 40; i++) randomBytes(4 * KiB).copy(source, ((i * 7919) % 2048) * 4 * KiB);
        const kept = await resync(target, source);
        const reread = await resync(target, source, { maxRetainedDigestBytes: 0 });
        expect(reread.ranges).toEqual(kept.ranges);
        expect(reread.cmp.stats.sourceBytesRead).toBeGreaterThan(kept.cmp.stats.sourceBytesRead);
        expect(apply(target, source, kept.ranges).equals(source)).toBe(true);
    });

    it('handles a disk whose size is not a whole number of blocks', async () => {
        const odd = 3 * MiB + 4096 + 1024;
        const t = randomBytes(odd);
        const s = Buffer.from(t);
        s[odd - 1]! ^= 1;
        s[MiB + 10]! ^= 1;
        const { ranges } = await resync(t, s);
        expect(ranges).toEqual([
            { offset: MiB, length: 4096 },
            { offset: 3 * MiB + 4096, length: 1024 },
        ]);
    });

    it('splits long differing runs so a log entry stays bounded', async () => {
        const source = Buffer.from(target);
        randomBytes(3 * MiB).copy(source, 0);
        const { cmp } = await resync(target, source);
        const ranges = cmp.differingRanges(MiB);
        expect(ranges.every((r) => r.length <= MiB)).toBe(true);
        expect(covered(ranges)).toBe(3 * MiB);
    });

    it('rejects a first manifest for another disk size, and answers to requests it did not make', async () => {
        const digester = await Digester.create(5n, defaultGeometry(size));
        const tree = await digestTreeOf(memorySource(target), digester);
        const first = await manifestFromTree(tree, digester, 0, 1, [{ first: 0, count: 8 }]);
        await expect(ProviderComparison.begin(memorySource(target.subarray(0, 4 * MiB)), first)).rejects.toThrow(
            /resize before resync/,
        );
        const partial = await manifestFromTree(tree, digester, 0, 1, [{ first: 0, count: 4 }]);
        await expect(ProviderComparison.begin(memorySource(target), partial)).rejects.toThrow(/all 8 coarse blocks/);

        const source = Buffer.from(target);
        source[100]! ^= 1;
        const cmp = await ProviderComparison.begin(memorySource(source), first);
        const req = cmp.nextRequest()!;
        const wrongLevel = await manifestFromTree(tree, digester, 2, 2, [{ first: 0, count: 16 }]);
        await expect(cmp.compare(wrongLevel)).rejects.toThrow(HvrError);
        const other = await Digester.create(6n, defaultGeometry(size));
        const otherTree = await digestTreeOf(memorySource(target), other);
        await expect(cmp.compare(await manifestFromTree(otherTree, other, req.level, 2, req.ranges))).rejects.toThrow(
            /another seed/,
        );
        await cmp.compare(await manifestFromTree(tree, digester, req.level, 2, req.ranges));
        const req3 = cmp.nextRequest()!;
        await cmp.compare(await manifestFromTree(tree, digester, req3.level, 3, req3.ranges));
        expect(cmp.nextRequest()).toBeUndefined();
        await expect(cmp.compare(wrongLevel)).rejects.toThrow(/no request is outstanding/);
        expect(cmp.differingRanges()).toEqual([{ offset: 0, length: 4096 }]);
    });

    it('copies the differing ranges into the log sink in disk order', async () => {
        const source = randomBytes(64 * KiB);
        const entries: [number, number][] = [];
        const written = await writeDifferingBlocks(
            memorySource(source),
            [
                { offset: 0, length: 4096 },
                { offset: 16384, length: 8192 },
            ],
            { add: (o, d) => void entries.push([o, d.length]) },
        );
        expect(written).toBe(12288);
        expect(entries).toEqual([
            [0, 4096],
            [16384, 8192],
        ]);
    });
});
