import { randomBytes } from 'node:crypto';
import { HvrError } from '../../../shared/errors';
import {
    compareFailbackRound,
    FailbackRound,
    leafRangesToBytes,
    manifestOfDisk,
    rootDigestOfDisk,
    roundOneRanges,
} from '../../../shared/failback/comparison';
import { ByteRange, defaultGeometry, Digester, NodeRange } from '../../../shared/resync/digest';
import { ByteSource } from '../../../shared/resync/provider';

const KiB = 1024;
const MiB = 1024 * KiB;

function memorySource(buf: Buffer): ByteSource {
    return {
        size: buf.length,
        read: (offset, length) => Promise.resolve(buf.subarray(offset, offset + length)),
    };
}

/** The whole exchange: the provider (onPrem) describes rounds, the cloud (azure) compares; the differing runs. */
async function failback(
    onPrem: Buffer,
    azure: Buffer,
): Promise<{ ranges: ByteRange[]; rounds: number; manifestBytes: number; root: string }> {
    const digester = await Digester.create(7n, defaultGeometry(onPrem.length));
    let round: FailbackRound = { level: 0, round: 1, ranges: roundOneRanges(digester.geometry) };
    const leaves: NodeRange[] = [];
    let manifestBytes = 0;
    let root = '';
    for (;;) {
        const manifest = await manifestOfDisk(memorySource(onPrem), digester, round.level, round.round, round.ranges);
        manifestBytes += manifest.length;
        const result = await compareFailbackRound(memorySource(azure), digester, round, manifest);
        if (result.rootDigest) root = result.rootDigest;
        leaves.push(...result.differingLeaves);
        if (!result.next) break;
        round = { level: result.next.level, round: round.round + 1, ranges: result.next.ranges };
    }
    return { ranges: leafRangesToBytes(digester.geometry, leaves), rounds: round.round, manifestBytes, root };
}

function apply(target: Buffer, source: Buffer, ranges: ByteRange[]): Buffer {
    const out = Buffer.from(target);
    for (const r of ranges) source.copy(out, r.offset, r.offset, r.offset + r.length);
    return out;
}

const covered = (ranges: ByteRange[]) => ranges.reduce((n, r) => n + r.length, 0);

describe('failback comparison (on-premises manifests against the Azure disk)', () => {
    const size = 8 * MiB;
    let onPrem: Buffer;
    beforeAll(() => {
        onPrem = randomBytes(size);
        onPrem.fill(0, 5 * MiB, 7 * MiB);
    });

    it('finds exactly the 4 KiB blocks the Azure VM wrote, in three rounds, and applying them makes the disks equal', async () => {
        const azure = Buffer.from(onPrem);
        for (const at of [0, 12 * KiB, 3 * MiB + 8 * KiB, 6 * MiB]) randomBytes(4 * KiB).copy(azure, at);
        const { ranges, rounds, manifestBytes, root } = await failback(onPrem, azure);
        expect(covered(ranges)).toBe(4 * 4 * KiB);
        expect(rounds).toBe(3);
        expect(manifestBytes).toBeLessThan(4 * KiB);
        const levelled = apply(onPrem, azure, ranges);
        expect(levelled.equals(azure)).toBe(true);
        const digester = await Digester.create(7n, defaultGeometry(size));
        expect(await rootDigestOfDisk(memorySource(levelled), digester)).toBe(root);
        expect(await rootDigestOfDisk(memorySource(onPrem), digester)).not.toBe(root);
    });

    it('needs no further round where the on-premises disk is all zeros: every written Azure block there differs', async () => {
        const azure = Buffer.from(onPrem);
        randomBytes(64 * KiB).copy(azure, 5 * MiB + 128 * KiB);
        const { ranges, rounds } = await failback(onPrem, azure);
        expect(ranges).toEqual([{ offset: 5 * MiB + 128 * KiB, length: 64 * KiB }]);
        expect(rounds).toBe(1);
    });

    it('finds zeros the Azure VM wrote over data (a trimmed block differs too)', async () => {
        const azure = Buffer.from(onPrem);
        azure.fill(0, 2 * MiB, 2 * MiB + 8 * KiB);
        const { ranges } = await failback(onPrem, azure);
        expect(ranges).toEqual([{ offset: 2 * MiB, length: 8 * KiB }]);
        expect(apply(onPrem, azure, ranges).equals(azure)).toBe(true);
    });

    it('sends nothing for identical disks', async () => {
        const { ranges, rounds } = await failback(onPrem, Buffer.from(onPrem));
        expect(ranges).toEqual([]);
        expect(rounds).toBe(1);
    });

    it('refuses a manifest that does not answer the round it was asked for', async () => {
        const digester = await Digester.create(7n, defaultGeometry(size));
        const manifest = await manifestOfDisk(memorySource(onPrem), digester, 0, 1, roundOneRanges(digester.geometry));
        const wrongRound = { level: 1, round: 2, ranges: [{ first: 0, count: 16 }] };
        await expect(compareFailbackRound(memorySource(onPrem), digester, wrongRound, manifest)).rejects.toMatchObject({
            code: 'RESYNC_MANIFEST_INVALID',
        });
        const otherSeed = await Digester.create(8n, defaultGeometry(size));
        await expect(
            compareFailbackRound(
                memorySource(onPrem),
                otherSeed,
                { level: 0, round: 1, ranges: roundOneRanges(otherSeed.geometry) },
                manifest,
            ),
        ).rejects.toBeInstanceOf(HvrError);
    });
});
