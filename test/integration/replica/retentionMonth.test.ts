import { HvrError } from '../../../shared/errors';
import { mergeUploadedLog } from '../../../shared/replica/mergeLog';
import { removePoint, sweepRecoveryPoints } from '../../../shared/replica/pruneSweep';
import { RetentionPolicy } from '../../../shared/replica/retentionSchedule';
import { createDrill } from '../../../shared/state/drills';
import { listRecoveryPointRows, listRecoveryPoints, replaceRecoveryPoint } from '../../../shared/state/recoveryPoints';
import { ReplicaHarness, seededRandom } from './harness';

const MiB = 1024 * 1024;
const HOUR = 3600_000;
const DAY = 24 * HOUR;
jest.setTimeout(600_000);

async function snapshotsOf(h: ReplicaHarness, diskId: string): Promise<string[]> {
    const out: string[] = [];
    const container = h.storage.blob.getContainerClient('replicas');
    for await (const b of container.listBlobsFlat({ prefix: `${h.vmId}/${diskId}.vhd`, includeSnapshots: true })) {
        if (b.snapshot) out.push(b.snapshot);
    }
    return out.sort();
}

describe('tiered retention over a simulated month (Azurite, virtual clock)', () => {
    it('keeps exactly the promised tiers, spares drills and holds, and leaves no snapshot of a pruned point', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(7);
        const disk = await h.addDisk('disk0', 2 * MiB);
        const retention: RetentionPolicy = {
            retentionHours: 12,
            tiers: { allPointsHours: 12, hourlyHours: 48, dailyDays: 10, weeklyWeeks: 5 },
        };
        const deps = h.deps({ retentionFor: async () => retention });
        const sweepDeps = { scope: h.scope, clock: h.clock };
        const start = h.clock.now().getTime();
        const cycles = 30 * 4; // every 6 hours for 30 days
        let drillCycle: string | undefined;
        for (let c = 1; c <= cycles; c++) {
            disk.randomWrites(rand, 2);
            const cycleId = `c${String(c).padStart(4, '0')}`;
            const consistency = c % 4 === 2 ? 'AppConsistent' : 'CrashConsistent';
            const name = await h.upload('disk0', disk.cutLog(), {
                cycleId,
                consistency,
                capturedAt: h.clock.now().toISOString(),
            });
            expect((await mergeUploadedLog(deps, name))[0]).toMatchObject({ status: 'applied' });
            if (c === 5 * 4) {
                // Day 5: a drill starts from this point and is never cleaned up in this test.
                drillCycle = cycleId;
                const at = h.clock.now().toISOString();
                await createDrill(h.scope, {
                    vmId: h.vmId,
                    drillId: 'tfo-1',
                    kind: 'TestFailover',
                    state: 'Completed',
                    jobId: 'job-1',
                    recoveryPointId: `${h.vmId}:${cycleId}`,
                    cycleId,
                    capturedAt: at,
                    consistency,
                    infrastructure: 'dryrun',
                    failoverBlobs: [],
                    resources: [],
                    startedAt: at,
                    cleanedUp: false,
                });
            }
            h.clock.advance(6 * 3600);
            // The scheduled sweep also runs between cycles (every 12 hours here): the same rule, idempotent.
            if (c % 2 === 0) await sweepRecoveryPoints(sweepDeps, h.vmId, retention);
        }
        const now = h.clock.now().getTime();
        const points = await listRecoveryPoints(h.scope, h.vmId);
        const age = (p: { capturedAt: string }): number => now - Date.parse(p.capturedAt);
        // Every cycle of the last 12 hours.
        const recent = points.filter((p) => age(p) < 12 * HOUR);
        expect(recent.map(age)).toEqual([6 * HOUR]);
        // One per clock hour to 48 h: with a cycle every 6 hours, every point there (ages 12, 18, … 42 h).
        expect(points.filter((p) => age(p) >= 12 * HOUR && age(p) < 48 * HOUR)).toHaveLength(6);
        // One per UTC day from 48 h to 10 days (whole days only), preferring the app-consistent point.
        const byDay = new Map<number, typeof points>();
        for (const p of points) {
            const t = Date.parse(p.capturedAt);
            const day = Math.floor(t / DAY);
            if (now - day * DAY > 10 * DAY || now - (day + 1) * DAY < 48 * HOUR) continue;
            byDay.set(day, [...(byDay.get(day) ?? []), p]);
        }
        expect(byDay.size).toBe(7);
        for (const [, ps] of byDay) {
            const withoutDrill = ps.filter((p) => p.cycleId !== drillCycle);
            expect(withoutDrill).toHaveLength(1);
            expect(withoutDrill[0]!.consistency).toBe('AppConsistent');
        }
        // One per ISO week from 10 days on; nothing older than the weekly tier's 5 weeks (the month fits).
        const weekly = points.filter((p) => age(p) >= 10 * DAY && p.cycleId !== drillCycle);
        const weeks = new Set(weekly.map((p) => Math.floor((Date.parse(p.capturedAt) - 4 * DAY) / (7 * DAY))));
        expect(weekly.length).toBe(weeks.size);
        expect(weeks.size).toBeGreaterThanOrEqual(3);
        // The drill's point stays although its day already has its app-consistent point.
        expect(points.some((p) => p.cycleId === drillCycle)).toBe(true);
        expect(points.length).toBeLessThan(60);
        expect(now - start).toBe(cycles * 6 * HOUR);
        // No snapshot outlives its point.
        const kept = points.map((p) => p.disks.disk0!.snapshot).sort();
        expect(await snapshotsOf(h, 'disk0')).toEqual(kept);
        // Changed bytes flowed forward: the oldest point's successor holds what the pruned points between changed.
        expect(points.every((p) => (p.changedBytes ?? 0) > 0)).toBe(true);
    });

    it('finishes a removal that a crashed sweep started, and never offers the point meanwhile', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(8);
        const disk = await h.addDisk('disk0', 2 * MiB);
        const deps = h.deps({ retentionFor: async () => ({ retentionHours: 100 }) });
        for (const cycleId of ['a', 'b', 'c']) {
            disk.randomWrites(rand, 2);
            const name = await h.upload('disk0', disk.cutLog(), { cycleId, capturedAt: h.clock.now().toISOString() });
            await mergeUploadedLog(deps, name);
            h.clock.advance(3600);
        }
        // A sweep marked `a` and died before deleting anything.
        const rows = await listRecoveryPointRows(h.scope, h.vmId);
        const a = rows.find((r) => r.point.cycleId === 'a')!;
        await replaceRecoveryPoint(h.scope, { ...a, point: { ...a.point, pruningSince: h.clock.now().toISOString() } });
        expect((await listRecoveryPoints(h.scope, h.vmId)).map((p) => p.cycleId)).toEqual(['c', 'b']);
        const result = await sweepRecoveryPoints({ scope: h.scope, clock: h.clock }, h.vmId, { retentionHours: 100 });
        expect(result.removed.map((p) => p.cycleId)).toEqual(['a']);
        expect(await snapshotsOf(h, 'disk0')).toHaveLength(2);
        // The next point holds what `a` changed: bytes are not lost when a point goes.
        const b = (await listRecoveryPoints(h.scope, h.vmId)).find((p) => p.cycleId === 'b')!;
        expect(b.changedBytes).toBeGreaterThanOrEqual(a.point.changedBytes!);
    });

    it('refuses to delete a point under hold, whoever asks, and the sweep keeps it past the schedule', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(9);
        const disk = await h.addDisk('disk0', 2 * MiB);
        const retention: RetentionPolicy = { retentionHours: 1, minimumRetentionDays: 7 };
        const deps = h.deps({ retentionFor: async () => retention });
        for (const cycleId of ['held', 'next']) {
            disk.randomWrites(rand, 2);
            const name = await h.upload('disk0', disk.cutLog(), { cycleId, capturedAt: h.clock.now().toISOString() });
            await mergeUploadedLog(deps, name);
            h.clock.advance(2 * 3600);
        }
        const row = (await listRecoveryPointRows(h.scope, h.vmId)).find((r) => r.point.cycleId === 'held')!;
        expect(row.point.holdUntil).toBeDefined();
        expect(row.point.immutability).toBe('None');
        const err = await removePoint({ scope: h.scope, clock: h.clock }, row).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(HvrError);
        expect((err as HvrError).code).toBe('PREREQUISITE_FAILED');
        expect((err as HvrError).message).toMatch(/cannot be deleted: it is held until .* minimum retention/);
        // Past the 1-hour schedule, the sweep keeps it (protected) until the hold ends, then removes it.
        const kept = await sweepRecoveryPoints({ scope: h.scope, clock: h.clock }, h.vmId, retention);
        expect(kept.removed).toEqual([]);
        expect(kept.protectedIds).toContain('held');
        expect(await snapshotsOf(h, 'disk0')).toHaveLength(2);
        h.clock.advance(7 * 24 * 3600);
        const later = await sweepRecoveryPoints({ scope: h.scope, clock: h.clock }, h.vmId, retention);
        expect(later.removed.map((p) => p.cycleId)).toEqual(['held']);
        // A legal hold has no end: set on `next`, nothing removes it.
        const next = (await listRecoveryPointRows(h.scope, h.vmId)).find((r) => r.point.cycleId === 'next')!;
        await replaceRecoveryPoint(h.scope, { ...next, point: { ...next.point, legalHold: true } });
        const fresh = (await listRecoveryPointRows(h.scope, h.vmId)).find((r) => r.point.cycleId === 'next')!;
        await expect(removePoint({ scope: h.scope, clock: h.clock }, fresh)).rejects.toThrow(/legal hold/);
    });
});
