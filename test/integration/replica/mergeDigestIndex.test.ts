import { HvrError } from '../../../shared/errors';
import { REPLICAS_CONTAINER } from '../../../shared/replica/logBlob';
import { mergeUploadedLog } from '../../../shared/replica/mergeLog';
import { replicaPageBlob } from '../../../shared/replica/replicaDisk';
import { ByteRange, defaultGeometry, Digester, nodeCountAt } from '../../../shared/resync/digest';
import {
    DigestIndex,
    DiskBlobs,
    DIRTY_MARKER_COMPACT_EVERY_LOGS,
    dirtyMarkerBlobName,
    refreshDigestIndex,
} from '../../../shared/resync/digestIndex';
import { ByteSource } from '../../../shared/resync/provider';
import { intersectByteRanges, mergeByteRanges, writtenRanges } from '../../../shared/resync/target';
import { digestTreeOf, manifestFromTree, rootDigestOf } from '../../../shared/resync/tree';
import { getReplicaDisk } from '../../../shared/state/disks';
import { randomBytesFrom, ReplicaHarness, seededRandom, SourceDisk } from './harness';

const KiB = 1024;
const MiB = 1024 * KiB;
const LEAF = 4 * KiB;
const DISK = 24 * MiB;

jest.setTimeout(180_000);

function memorySource(buf: Buffer): ByteSource {
    return { size: buf.length, read: (o, l) => Promise.resolve(buf.subarray(o, o + l)) };
}

function diskBlobs(h: ReplicaHarness, diskId: string): DiskBlobs {
    return { container: h.storage.blob.getContainerClient(REPLICAS_CONTAINER), vmId: h.vmId, diskId };
}

/** Writes to the source disk (pending for its next log) and remembers the range. */
function write(disk: SourceDisk, ranges: ByteRange[], offset: number, data: Buffer): void {
    disk.write(offset, data);
    ranges.push({ offset, length: data.length });
}

async function mergeNext(h: ReplicaHarness, disk: SourceDisk, meta: { resync?: boolean } = {}): Promise<string> {
    const name = await h.upload(disk.diskId, disk.cutLog(), meta);
    const [outcome] = await mergeUploadedLog(h.deps(), name);
    expect(outcome).toMatchObject({ status: 'applied', sequence: disk.sequence });
    return name;
}

/** The index's every level, and its root, equal a tree built from scratch from the source's bytes. */
async function expectIndexEqualsFreshBuild(d: DiskBlobs, source: Buffer): Promise<void> {
    const index = (await DigestIndex.open(d))!;
    const digester = await Digester.create(index.header.seed, defaultGeometry(DISK));
    const tree = await digestTreeOf(memorySource(source), digester);
    for (let level = 0; level < digester.geometry.levels; level++) {
        const all = [{ first: 0, count: nodeCountAt(digester.geometry, level) }];
        const fromIndex = await index.manifest(level, level + 1, all);
        expect(fromIndex.equals(await manifestFromTree(tree, digester, level, level + 1, all))).toBe(true);
    }
    expect((await index.rootDigest()).equals(rootDigestOf(tree, digester))).toBe(true);
}

describe('the merge keeps the resync digest index current', () => {
    it('after N merged logs (a resync log among them) a refresh reads only their blocks and equals a fresh build', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(4242);
        const disk = await h.addDisk('disk0', DISK);
        const d = diskBlobs(h, 'disk0');

        // A baseline: 8 MiB at the start and a 1 MiB island, merged, then the index built from scratch.
        write(disk, [], 0, randomBytesFrom(rand, 8 * MiB));
        write(disk, [], 16 * MiB, randomBytesFrom(rand, 1 * MiB));
        await mergeNext(h, disk);
        const built = await refreshDigestIndex(d);
        expect(built).toMatchObject({ complete: true, appliedSequence: 1, markersConsumed: 1, unmarkedLogs: 0 });
        expect(built.replica.bytesRead).toBe(9 * MiB);

        // N = 3 logs of churn: scattered small writes, an overwrite, zeros (Clear Pages), a write into never-written
        // space, and last a resync log (the merge marks those too).
        const churn: ByteRange[] = [];
        write(disk, churn, 1 * MiB + 512, randomBytesFrom(rand, 1024));
        write(disk, churn, 3 * MiB, randomBytesFrom(rand, 64 * KiB));
        write(disk, churn, 3 * MiB + 16 * KiB, Buffer.alloc(32 * KiB)); // all zero: sent as Clear Pages
        write(disk, churn, 12 * MiB + 4 * KiB, randomBytesFrom(rand, 8 * KiB)); // never written before
        await mergeNext(h, disk);
        write(disk, churn, 16 * MiB + 100 * KiB, Buffer.alloc(LEAF)); // a whole leaf cleared
        write(disk, churn, 7 * MiB + 2048, randomBytesFrom(rand, 4 * KiB)); // straddles two leaves
        await mergeNext(h, disk);
        write(disk, churn, 20 * MiB, randomBytesFrom(rand, 2 * KiB));
        write(disk, churn, 5 * MiB + 40 * KiB, randomBytesFrom(rand, 12 * KiB));
        await mergeNext(h, disk, { resync: true });
        for (let n = 2; n <= 4; n++) {
            expect(await d.container.getBlobClient(dirtyMarkerBlobName(d, n)).exists()).toBe(true);
        }

        const refresh = await refreshDigestIndex(d, { readGapBytes: 0 });
        expect(refresh).toMatchObject({ complete: true, appliedSequence: 4, markersConsumed: 3, unmarkedLogs: 0 });
        // Exactly the leaves the three logs touched that still hold written pages: the cleared leaf is not read.
        const dirtyLeaves = mergeByteRanges(
            churn.map((r) => {
                const first = Math.floor(r.offset / LEAF) * LEAF;
                return { offset: first, length: Math.ceil((r.offset + r.length) / LEAF) * LEAF - first };
            }),
        );
        const replica = replicaPageBlob(h.storage.blob, `${h.vmId}/disk0.vhd`);
        const written = await writtenRanges(replica, DISK);
        let expected = 0;
        for (const leafRange of dirtyLeaves) {
            for (let leaf = leafRange.offset; leaf < leafRange.offset + leafRange.length; leaf += LEAF) {
                if (intersectByteRanges([{ offset: leaf, length: LEAF }], written).length > 0) expected += LEAF;
            }
        }
        expect(expected).toBeGreaterThan(0);
        expect(expected).toBeLessThan(dirtyLeaves.reduce((n, r) => n + r.length, 0));
        expect(refresh.replica.bytesRead).toBe(expected);
        expect(refresh.replica.bytesRead).toBeLessThan(built.replica.bytesRead / 50);

        const replicaData = await replica.downloadToBuffer(0, DISK);
        expect(replicaData.equals(disk.bytes)).toBe(true);
        await expectIndexEqualsFreshBuild(d, disk.bytes);
        // The markers are consumed: nothing is dirty any more.
        expect((await refreshDigestIndex(d)).replica.bytesRead).toBe(0);
    });

    it('stops before the first page when the dirty marker cannot be written, and the retry applies the log', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(77);
        const disk = await h.addDisk('disk0', DISK);
        const d = diskBlobs(h, 'disk0');
        write(disk, [], 2 * MiB, randomBytesFrom(rand, 256 * KiB));
        await mergeNext(h, disk);
        await refreshDigestIndex(d);
        const before = await h.replicaBytes('disk0');

        // Another holder's lease on the marker's name makes its upload fail with 412, as a storage fault would.
        const marker = d.container.getBlockBlobClient(dirtyMarkerBlobName(d, 2));
        await marker.upload(Buffer.alloc(0), 0);
        const lease = marker.getBlobLeaseClient();
        await lease.acquireLease(-1);
        write(disk, [], 6 * MiB, randomBytesFrom(rand, 128 * KiB));
        const name = await h.upload('disk0', disk.cutLog());
        let failure: unknown;
        try {
            await mergeUploadedLog(h.deps(), name);
        } catch (err) {
            failure = err;
        }
        expect(failure).toBeInstanceOf(HvrError);
        expect(failure).toMatchObject({ code: 'TRANSIENT', recoverable: true });
        expect((failure as Error).message).toMatch(/log 2 writes on disk disk0 .* no page was written/);
        // Nothing half-done: the replica is still at log 1, byte for byte; only the intent is recorded.
        const replica = replicaPageBlob(h.storage.blob, `${h.vmId}/disk0.vhd`);
        expect((await replica.getProperties()).blobSequenceNumber).toBe(1);
        expect((await h.replicaBytes('disk0')).equals(before)).toBe(true);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk).toMatchObject({
            sequence: 1,
            applyingSequence: 2,
        });

        await lease.releaseLease();
        expect(await mergeUploadedLog(h.deps(), name)).toEqual([
            expect.objectContaining({ status: 'applied', sequence: 2 }),
        ]);
        const refresh = await refreshDigestIndex(d, { readGapBytes: 0 });
        expect(refresh).toMatchObject({ markersConsumed: 1, unmarkedLogs: 0 });
        expect(refresh.replica.bytesRead).toBe(128 * KiB);
        await expectIndexEqualsFreshBuild(d, disk.bytes);
    });

    it('compacts the dirty markers as logs merge: one blob per disk, not one per log, and the index still exact', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(2024);
        const disk = await h.addDisk('disk0', DISK);
        const d = diskBlobs(h, 'disk0');
        const every = DIRTY_MARKER_COMPACT_EVERY_LOGS;
        const markers = async (): Promise<number[]> => {
            const prefix = dirtyMarkerBlobName(d, 1).slice(0, -12);
            const out: number[] = [];
            for await (const b of d.container.listBlobsFlat({ prefix })) out.push(Number(b.name.slice(prefix.length)));
            return out;
        };
        // A 4 KiB write in its own leaf per log, 64 KiB apart: a refresh reads exactly the leaves the logs wrote.
        const logWrite = (n: number): void =>
            write(disk, [], ((n * 64) % (DISK / KiB)) * KiB, randomBytesFrom(rand, 4 * KiB));

        // No index yet: the markers describe nothing a refresh will reuse, and go at the compaction.
        for (let n = 1; n < every; n++) {
            logWrite(n);
            await mergeNext(h, disk);
        }
        expect(await markers()).toHaveLength(every - 1);
        logWrite(every);
        await mergeNext(h, disk);
        expect(await markers()).toEqual([]);

        // With an index, they are folded into the highest one, which the next refresh consumes.
        await refreshDigestIndex(d);
        for (let n = every + 1; n <= 2 * every + 1; n++) {
            logWrite(n);
            await mergeNext(h, disk);
        }
        expect(await markers()).toEqual([2 * every, 2 * every + 1]);
        const refresh = await refreshDigestIndex(d, { readGapBytes: 0 });
        expect(refresh).toMatchObject({ complete: true, markersConsumed: 2, unmarkedLogs: 0 });
        expect(refresh.replica.bytesRead).toBe((every + 1) * 4 * KiB);
        await expectIndexEqualsFreshBuild(d, disk.bytes);
    });
});
