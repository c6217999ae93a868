import { chooseRecoveryPoint } from '../../../shared/failover/recoveryPointChoice';
import {
    deleteFailoverDisks,
    failoverDiskCopyStatus,
    FailoverDiskStatus,
    failoverPageBlob,
    listFailoverDisks,
    plannedCopies,
    startFailoverDiskCopies,
} from '../../../shared/failover/failoverDisks';
import { mergeUploadedLog } from '../../../shared/replica/mergeLog';
import { replicaPageBlob } from '../../../shared/replica/replicaDisk';
import { listRecoveryPoints, RecoveryPoint } from '../../../shared/state/recoveryPoints';
import { decodeVhdFooter } from '../../../shared/vhd/footer';
import { hasQemuImg, qemuCompare, ReplicaHarness, seededRandom, SourceDisk } from '../replica/harness';

const MiB = 1024 * 1024;
const NOW = new Date('2026-03-01T10:00:00Z');

/** Runs one replication cycle on every disk: random writes, one log per disk, merged; returns each disk's bytes. */
async function cycle(
    h: ReplicaHarness,
    disks: SourceDisk[],
    rand: () => number,
    n: number,
    consistency: 'CrashConsistent' | 'AppConsistent' = 'CrashConsistent',
): Promise<Map<string, Buffer>> {
    const capturedAt = new Date(NOW.getTime() + n * 60_000).toISOString();
    for (const disk of disks) {
        disk.randomWrites(rand, 25);
        const name = await h.upload(disk.diskId, disk.cutLog(), { cycleId: `c${n}`, consistency, capturedAt });
        const [outcome] = await mergeUploadedLog(h.deps(), name);
        expect(outcome?.status).toBe('applied');
    }
    return new Map(disks.map((d) => [d.diskId, Buffer.from(d.bytes)]));
}

async function pointOf(h: ReplicaHarness, cycleId: string): Promise<RecoveryPoint> {
    const point = (await listRecoveryPoints(h.scope, h.vmId)).find((p) => p.cycleId === cycleId);
    if (!point) throw new Error(`no recovery point for ${cycleId}`);
    return point;
}

async function prepare(h: ReplicaHarness, point: RecoveryPoint, drillId: string): Promise<FailoverDiskStatus[]> {
    const copies = plannedCopies(point, drillId);
    await startFailoverDiskCopies(h.storage, copies);
    // Azurite finishes a copy at once; Azure may report pending first, which the orchestration polls.
    return failoverDiskCopyStatus(h.storage, copies);
}

async function expectFailoverDiskEquals(h: ReplicaHarness, status: FailoverDiskStatus, source: Buffer): Promise<void> {
    expect(status.state).toBe('success');
    const vhd = await failoverPageBlob(h.storage.blob, status.blobName).downloadToBuffer(0, undefined, {
        concurrency: 4,
        blockSize: 8 * MiB,
    });
    expect(vhd.length).toBe(source.length + 512);
    const data = vhd.subarray(0, source.length);
    if (!data.equals(source)) {
        let at = 0;
        while (at < data.length && data[at] === source[at]) at++;
        throw new Error(`failover disk ${status.diskId} differs from the source at byte ${at}`);
    }
    expect(decodeVhdFooter(vhd.subarray(source.length)).currentSize).toBe(source.length);
    if (hasQemuImg) {
        const result = await qemuCompare(source, vhd);
        expect(result.output).toContain('Images are identical');
        expect(result.code).toBe(0);
    }
}

describe('failover disks from a recovery point (Azurite)', () => {
    it('copies each disk of an older point to a page blob equal to the source as it was at that cycle, while replication goes on', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(7001);
        const disks = [await h.addDisk('os', 8 * MiB), await h.addDisk('data', 4 * MiB)];
        await cycle(h, disks, rand, 1);
        const atCycle2 = await cycle(h, disks, rand, 2, 'AppConsistent');
        const point2 = await pointOf(h, 'c2');

        // The drill starts from cycle 2; the replica moves on to cycle 3 before and after the copy.
        await cycle(h, disks, rand, 3);
        const statuses = await prepare(h, point2, 'drill1');
        const atCycle4 = await cycle(h, disks, rand, 4);

        expect(statuses.map((s) => s.diskId)).toEqual(['data', 'os']);
        for (const s of statuses) await expectFailoverDiskEquals(h, s, atCycle2.get(s.diskId)!);
        // The replica itself is at cycle 4, untouched by the drill.
        const replicaOs = await h.replicaBytes('os');
        expect(replicaOs.subarray(0, 8 * MiB).equals(atCycle4.get('os')!)).toBe(true);
        expect((await replicaPageBlob(h.storage.blob, `${h.vmId}/os.vhd`).getProperties()).blobSequenceNumber).toBe(4);
    });

    it('keeps the recovery point consistent when the failover copy runs in the middle of a merge', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(7002);
        const disk = await h.addDisk('os', 8 * MiB);
        const atCycle1 = await cycle(h, [disk], rand, 1);
        const point1 = await pointOf(h, 'c1');

        disk.randomWrites(rand, 60);
        const name = await h.upload('os', disk.cutLog(), { cycleId: 'c2', capturedAt: NOW.toISOString() });
        let statuses: FailoverDiskStatus[] = [];
        let writesBeforeCopy = 0;
        const [outcome] = await mergeUploadedLog(
            h.deps({
                afterWrite: async (_log, k) => {
                    // Some of cycle 2's pages are in the replica already: a copy of the live blob would mix cycles.
                    if (k === 3) {
                        writesBeforeCopy = k;
                        statuses = await prepare(h, point1, 'drill-inflight');
                    }
                },
            }),
            name,
        );
        expect(outcome?.status).toBe('applied');
        expect(writesBeforeCopy).toBe(3);
        expect(statuses).toHaveLength(1);
        await expectFailoverDiskEquals(h, statuses[0]!, atCycle1.get('os')!);
        // And the replica did finish cycle 2.
        expect((await h.replicaBytes('os')).subarray(0, 8 * MiB).equals(disk.bytes)).toBe(true);
    });

    it('does not start a second copy when the start is retried, and replaces a copy from another snapshot', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(7003);
        const disk = await h.addDisk('os', 4 * MiB);
        const atCycle1 = await cycle(h, [disk], rand, 1);
        const atCycle2 = await cycle(h, [disk], rand, 2);
        const [point2, point1] = [await pointOf(h, 'c2'), await pointOf(h, 'c1')];

        const first = await prepare(h, point1, 'd');
        const copyId = (await failoverPageBlob(h.storage.blob, first[0]!.blobName).getProperties()).copyId;
        await prepare(h, point1, 'd');
        expect((await failoverPageBlob(h.storage.blob, first[0]!.blobName).getProperties()).copyId).toBe(copyId);
        await expectFailoverDiskEquals(h, first[0]!, atCycle1.get('os')!);

        // Same drill id, another point (a recovery point changed before the copy was used): the blob is replaced.
        const second = await prepare(h, point2, 'd');
        expect((await failoverPageBlob(h.storage.blob, second[0]!.blobName).getProperties()).copyId).not.toBe(copyId);
        await expectFailoverDiskEquals(h, second[0]!, atCycle2.get('os')!);
    });

    it('refuses with REPLICA_NOT_FOUND when the snapshot of the chosen point was pruned', async () => {
        const h = new ReplicaHarness();
        const disk = await h.addDisk('os', 4 * MiB);
        await cycle(h, [disk], seededRandom(7004), 1);
        const point = await pointOf(h, 'c1');
        const snap = point.disks.os!;
        await replicaPageBlob(h.storage.blob, snap.blobName).withSnapshot(snap.snapshot).delete();
        await expect(startFailoverDiskCopies(h.storage, plannedCopies(point, 'gone'))).rejects.toMatchObject({
            code: 'REPLICA_NOT_FOUND',
        });
    });

    it('reports a copy that never started as failed, and deletes the drill blobs found by prefix', async () => {
        const h = new ReplicaHarness();
        const disk = await h.addDisk('os', 4 * MiB);
        await h.addDisk('data', 4 * MiB);
        await cycle(h, [disk, h.disks.get('data')!], seededRandom(7005), 1);
        const point = chooseRecoveryPoint(await listRecoveryPoints(h.scope, h.vmId), { type: 'Latest' });
        const copies = plannedCopies(point, 'half');
        // Only the first disk's copy was started before the drill failed.
        await startFailoverDiskCopies(h.storage, copies.slice(0, 1));
        const statuses = await failoverDiskCopyStatus(h.storage, copies);
        expect(statuses.map((s) => s.state)).toEqual(['success', 'failed']);
        expect(statuses[1]!.detail).toContain('does not exist');

        const found = await listFailoverDisks(h.storage, h.vmId, 'half');
        expect(found).toEqual([copies[0]!.blobName]);
        expect(await deleteFailoverDisks(h.storage, [...found, copies[1]!.blobName])).toEqual(found);
        expect(await listFailoverDisks(h.storage, h.vmId, 'half')).toEqual([]);
        // The replica and its snapshot are untouched.
        const snap = point.disks.os!;
        expect(await replicaPageBlob(h.storage.blob, snap.blobName).withSnapshot(snap.snapshot).exists()).toBe(true);
    });
});
