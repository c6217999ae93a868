import {
    createRecoveryPoint,
    getRecoveryPoint,
    RecoveryPoint,
    unclaimedSnapshots,
} from '../../../shared/state/recoveryPoints';
import { StateScope } from '../../../shared/state/protectedItems';
import { testStorage, uniqueName } from '../../support/azurite';

function point(vmId: string, snapshot: string): RecoveryPoint {
    return {
        vmId,
        cycleId: 'cycle-1',
        recoveryPointId: `${vmId}.cycle-1`,
        consistency: 'CrashConsistent',
        capturedAt: '2026-12-02T06:00:00.000Z',
        createdAt: '2026-12-02T06:00:05.000Z',
        disks: { os: { blobName: `${vmId}/os.vhd`, snapshot, sequence: 3 } },
    };
}

describe('recovery point rows (Azurite)', () => {
    it('a create repeated with the same snapshots is the same point; another one for the cycle is refused', async () => {
        const scope: StateScope = { conn: testStorage(), tablePrefix: uniqueName('rp') };
        const vmId = uniqueName('vm');
        expect(await createRecoveryPoint(scope, point(vmId, '2026-12-02T06:00:04.1230000Z'))).toBe(true);
        // What an SDK retry of a create whose first answer was lost sees: a 409 on its own row. The caller keeps
        // the snapshots (the row names them); deleting them would leave a point that cannot be restored.
        expect(await createRecoveryPoint(scope, point(vmId, '2026-12-02T06:00:04.1230000Z'))).toBe(true);
        // A second writer of the same cycle with its own snapshots loses and must delete them.
        expect(await createRecoveryPoint(scope, point(vmId, '2026-12-02T06:00:04.9990000Z'))).toBe(false);
        expect((await getRecoveryPoint(scope, vmId, 'cycle-1'))?.disks.os?.snapshot).toBe(
            '2026-12-02T06:00:04.1230000Z',
        );
    });

    it("a losing writer deletes only the snapshots the winner's row does not name", () => {
        const winner = point('vm', 'S1');
        const ours = {
            os: { blobName: 'vm/os.vhd', snapshot: 'S1', sequence: 3 },
            data: { blobName: 'vm/data.vhd', snapshot: 'S2', sequence: 3 },
        };
        expect(unclaimedSnapshots(ours, winner)).toEqual([ours.data]);
        expect(unclaimedSnapshots(ours, undefined)).toEqual([ours.os, ours.data]);
    });
});
