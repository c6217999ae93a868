import { mergeUploadedLog } from '../../../shared/replica/mergeLog';
import { replicaPageBlob } from '../../../shared/replica/replicaDisk';
import { getLatestRecoveryPoint, getRecoveryPointAt, listRecoveryPoints } from '../../../shared/state/recoveryPoints';
import { ReplicaHarness, seededRandom } from './harness';

const MiB = 1024 * 1024;
jest.setTimeout(180_000);

describe('VM-consistent recovery points', () => {
    it('records one point per completed cycle whose snapshots hold every disk as it was at that cycle', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(42);
        const disks = [await h.addDisk('disk0', 4 * MiB), await h.addDisk('disk1', 6 * MiB)];
        const expected = new Map<string, Map<string, Buffer>>();
        for (let cycle = 1; cycle <= 3; cycle++) {
            const cycleId = `cycle-${cycle}`;
            const capturedAt = new Date(Date.UTC(2026, 2, 1, 10, cycle * 5)).toISOString();
            const consistency = cycle === 2 ? 'AppConsistent' : 'CrashConsistent';
            const names: string[] = [];
            for (const disk of disks) {
                disk.randomWrites(rand, 10);
                names.push(await h.upload(disk.diskId, disk.cutLog(), { cycleId, consistency, capturedAt }));
            }
            expected.set(cycleId, new Map(disks.map((d) => [d.diskId, Buffer.from(d.bytes)])));
            // The first disk alone does not complete the cycle.
            expect((await mergeUploadedLog(h.deps(), names[0]!))[0]).toMatchObject({ status: 'applied' });
            expect(await listRecoveryPoints(h.scope, h.vmId)).toHaveLength(cycle - 1);
            const [last] = await mergeUploadedLog(h.deps(), names[1]!);
            expect(last).toMatchObject({ status: 'applied', recoveryPointId: `${h.vmId}:${cycleId}` });
        }
        const points = await listRecoveryPoints(h.scope, h.vmId);
        expect(points.map((p) => p.cycleId)).toEqual(['cycle-3', 'cycle-2', 'cycle-1']);
        expect(points.map((p) => p.consistency)).toEqual(['CrashConsistent', 'AppConsistent', 'CrashConsistent']);
        expect((await getLatestRecoveryPoint(h.scope, h.vmId, 'AppConsistent'))?.cycleId).toBe('cycle-2');
        expect((await getRecoveryPointAt(h.scope, h.vmId, new Date(Date.UTC(2026, 2, 1, 10, 12))))?.cycleId).toBe(
            'cycle-2',
        );
        for (const point of points) {
            for (const disk of disks) {
                const snap = point.disks[disk.diskId]!;
                const bytes = await h.replicaBytes(disk.diskId, snap.snapshot);
                const want = expected.get(point.cycleId)!.get(disk.diskId)!;
                expect(bytes.subarray(0, disk.virtualSize).equals(want)).toBe(true);
            }
        }
        expect(h.notifier.named('cycleComplete')).toHaveLength(3);
    });

    it('creates the point once when the last two disks finish the cycle at the same time', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(43);
        const disks = [await h.addDisk('disk0', 4 * MiB), await h.addDisk('disk1', 4 * MiB)];
        const names: string[] = [];
        for (const disk of disks) {
            disk.randomWrites(rand, 10);
            names.push(await h.upload(disk.diskId, disk.cutLog(), { cycleId: 'c1', consistency: 'CrashConsistent' }));
        }
        await Promise.all(names.map((n) => mergeUploadedLog(h.deps(), n)));
        const points = await listRecoveryPoints(h.scope, h.vmId);
        expect(points).toHaveLength(1);
        expect(h.notifier.named('cycleComplete')).toHaveLength(1);
        // The loser's snapshots were removed: only the point's snapshot remains per disk.
        for (const disk of disks) {
            const container = h.storage.blob.getContainerClient('replicas');
            const snapshots: string[] = [];
            for await (const b of container.listBlobsFlat({
                prefix: `${h.vmId}/${disk.diskId}`,
                includeSnapshots: true,
            })) {
                if (b.snapshot) snapshots.push(b.snapshot);
            }
            expect(snapshots).toEqual([points[0]!.disks[disk.diskId]!.snapshot]);
        }
    });

    it('prunes points older than the retention and their snapshots, keeping the last app-consistent one', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(44);
        const disk = await h.addDisk('disk0', 4 * MiB);
        const retention = { retentionHours: 72, appConsistentFrequencyHours: 4 };
        const deps = h.deps({ retentionFor: async () => retention });
        const run = async (cycleId: string, consistency: 'CrashConsistent' | 'AppConsistent'): Promise<void> => {
            disk.randomWrites(rand, 5);
            const capturedAt = h.clock.now().toISOString();
            await mergeUploadedLog(deps, await h.upload('disk0', disk.cutLog(), { cycleId, consistency, capturedAt }));
        };
        await run('old-app', 'AppConsistent');
        await run('old-crash', 'CrashConsistent');
        const oldSnapshot = (await listRecoveryPoints(h.scope, h.vmId))[0]!.disks.disk0!.snapshot;
        h.clock.advance(80 * 3600);
        await run('new-crash', 'CrashConsistent');
        const points = await listRecoveryPoints(h.scope, h.vmId);
        expect(points.map((p) => p.cycleId)).toEqual(['new-crash', 'old-app']);
        const page = replicaPageBlob(h.storage.blob, `${h.vmId}/disk0.vhd`);
        expect(await page.withSnapshot(oldSnapshot).exists()).toBe(false);
    });
});
