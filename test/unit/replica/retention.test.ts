import { pointsToPrune, isCycleComplete } from '../../../shared/replica/recoveryPoints';
import { ReplicaDiskRow } from '../../../shared/state/disks';
import { RecoveryPoint } from '../../../shared/state/recoveryPoints';

const now = new Date('2026-03-10T00:00:00Z');
function point(hoursAgo: number, consistency: RecoveryPoint['consistency'] = 'CrashConsistent'): RecoveryPoint {
    const at = new Date(now.getTime() - hoursAgo * 3600_000).toISOString();
    return {
        vmId: 'vm',
        cycleId: `c${hoursAgo}`,
        recoveryPointId: `vm:c${hoursAgo}`,
        consistency,
        capturedAt: at,
        createdAt: at,
        disks: {},
    };
}

describe('recovery point retention', () => {
    it('prunes points older than the retention window and keeps the rest', () => {
        const points = [point(1), point(30), point(71), point(73), point(100)];
        expect(pointsToPrune(points, now, { retentionHours: 72 }).map((p) => p.cycleId)).toEqual(['c73', 'c100']);
    });

    it('keeps the latest app-consistent point past retention until a newer one exists', () => {
        const points = [point(1), point(30, 'AppConsistent'), point(50, 'AppConsistent')];
        expect(pointsToPrune(points, now, { retentionHours: 24 }).map((p) => p.cycleId)).toEqual(['c50']);
    });

    it('with retention 0 keeps only the newest point (and the newest app-consistent one)', () => {
        const points = [point(0.1), point(2), point(3, 'AppConsistent'), point(4)];
        expect(pointsToPrune(points, now, { retentionHours: 0 }).map((p) => p.cycleId)).toEqual(['c2', 'c4']);
    });
});

describe('cycle completion', () => {
    const row = (diskId: string, lastCycleId: string | undefined, extra: object = {}): ReplicaDiskRow => ({
        etag: 'e',
        disk: {
            vmId: 'vm',
            diskId,
            siteId: 's',
            virtualSize: 1,
            blobName: 'b',
            state: 'Replicating',
            sequence: 3,
            appliedBytes: 0,
            lastCycleId,
            createdAt: '',
            updatedAt: '',
            ...extra,
        },
    });

    it('is complete only when every disk applied the cycle and none is writing a later log', () => {
        expect(isCycleComplete([row('a', 'c1'), row('b', 'c1')], 'c1')).toBe(true);
        expect(isCycleComplete([row('a', 'c1'), row('b', 'c0')], 'c1')).toBe(false);
        expect(isCycleComplete([row('a', 'c1'), row('b', 'c1', { applyingSequence: 4 })], 'c1')).toBe(false);
        expect(isCycleComplete([row('a', 'c1'), row('b', 'c1', { state: 'ResyncRequired' })], 'c1')).toBe(false);
        expect(isCycleComplete([], 'c1')).toBe(false);
    });
});
