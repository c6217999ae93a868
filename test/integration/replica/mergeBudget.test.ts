import { bufferSource } from '../../../shared/hrl/source';
import { entryDataIsZero, readHrlIndex } from '../../../shared/hrl/reader';
import { applyPlanKey, planApplySteps } from '../../../shared/replica/applyLog';
import { MergeBudget, mergeUploadedLog } from '../../../shared/replica/mergeLog';
import { planPageWrites, resolveLastWriterWins } from '../../../shared/replica/writePlan';
import { getReplicaDisk } from '../../../shared/state/disks';
import { hasQemuImg, qemuCompare, ReplicaHarness, seededRandom } from './harness';

const MiB = 1024 * 1024;

/** A budget that runs out once `steps` steps have started in this invocation (the first always starts). */
function stepBudget(steps: number): MergeBudget & { asked: number } {
    const budget = {
        asked: 0,
        exhausted(): boolean {
            budget.asked++;
            return budget.asked >= steps;
        },
    };
    return budget;
}

async function stepsOf(log: Buffer, diskSize: number, readBytes: number): Promise<number> {
    const index = await readHrlIndex(bufferSource(log), { diskSize });
    const writes = [...index.entries()].map((e) => ({
        diskOffset: e.diskOffset,
        length: e.length,
        logOffset: e.logOffset,
        zero: entryDataIsZero(e),
    }));
    return planApplySteps(planPageWrites(resolveLastWriterWins(writes)), readBytes).length;
}

describe('a merge larger than one budget', () => {
    it('completes across exactly 4 invocations, recording its progress under the intent, replica identical', async () => {
        const h = new ReplicaHarness();
        const disk = await h.addDisk('disk0', 16 * MiB);
        disk.randomWrites(seededRandom(41), 90);
        const cut = disk.cutLog();
        const steps = await stepsOf(cut.log, disk.virtualSize, h.settings.readBytes);
        // Steps per budget such that the log needs exactly 4 budgets (3 full ones and a last, shorter or not).
        const perBudget = [...Array(steps).keys()].map((k) => k + 1).find((p) => Math.ceil(steps / p) === 4);
        if (perBudget === undefined) throw new Error(`a ${steps}-step plan cannot be cut into exactly 4 budgets`);
        const name = await h.upload('disk0', cut);

        const invocations: string[] = [];
        const recorded: (number | undefined)[] = [];
        for (let i = 0; i < 10; i++) {
            const [outcome] = await mergeUploadedLog(h.deps({ budget: stepBudget(perBudget) }), name);
            invocations.push(outcome!.status);
            const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
            recorded.push(row.applyingStep);
            if (outcome!.status !== 'continuing') break;
            // Progress is recorded with the intent, under the plan it counts in; the blob stays at n-1.
            expect(row).toMatchObject({
                sequence: 0,
                applyingSequence: 1,
                applyingLogId: cut.logId,
                applyingPlan: applyPlanKey(h.settings.readBytes),
            });
            expect(outcome).toMatchObject({ stepsDone: Math.min(steps, perBudget * (i + 1)), steps });
        }
        expect(invocations).toEqual(['continuing', 'continuing', 'continuing', 'applied']);
        expect(recorded.slice(0, 3)).toEqual([perBudget, 2 * perBudget, 3 * perBudget]);
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
        expect(row).toMatchObject({ sequence: 1, lastLogId: cut.logId });
        expect(row.applyingSequence).toBeUndefined();
        expect(row.applyingStep).toBeUndefined();
        const replica = await h.replicaBytes('disk0');
        expect(replica.subarray(0, disk.virtualSize).equals(disk.bytes)).toBe(true);
        if (hasQemuImg) {
            expect(await qemuCompare(disk.bytes, replica)).toMatchObject({ code: 0 });
        } else {
            process.stdout.write('qemu-img is missing: the independent VHD comparison is skipped\n');
        }
        // One LogApplied, for the invocation that finished.
        expect(h.notifier.named('logApplied')).toHaveLength(1);
    });

    it('starts over (same bytes, same guard) when the read size changed between invocations', async () => {
        const h = new ReplicaHarness();
        const disk = await h.addDisk('disk0', 16 * MiB);
        disk.randomWrites(seededRandom(43), 30);
        const cut = disk.cutLog();
        const name = await h.upload('disk0', cut);
        const [first] = await mergeUploadedLog(h.deps({ budget: stepBudget(2) }), name);
        expect(first).toMatchObject({ status: 'continuing' });
        const other = { ...h.settings, readBytes: 2 * MiB };
        const [second] = await mergeUploadedLog(h.deps({ settings: other, budget: stepBudget(1000) }), name);
        expect(second).toMatchObject({ status: 'applied', metrics: { fromStep: 0 } });
        const replica = await h.replicaBytes('disk0');
        expect(replica.subarray(0, disk.virtualSize).equals(disk.bytes)).toBe(true);
    });

    it('refuses a log replaced between two budgets and requires a resync, with the intent cleared', async () => {
        const h = new ReplicaHarness();
        const disk = await h.addDisk('disk0', 16 * MiB);
        disk.randomWrites(seededRandom(47), 30);
        const cut = disk.cutLog();
        const name = await h.upload('disk0', cut);
        const [first] = await mergeUploadedLog(h.deps({ budget: stepBudget(1) }), name);
        expect(first).toMatchObject({ status: 'continuing' });
        // The same name uploaded again with other content (a write grant allows it).
        const other = Buffer.from(cut.log);
        other[other.length - 1]! ^= 0xff;
        await h.upload('disk0', { ...cut, log: other });
        const [second] = await mergeUploadedLog(h.deps({ budget: stepBudget(1000) }), name);
        expect(second).toMatchObject({ status: 'quarantined', reason: 'InvalidLog', diskMarked: true });
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
        expect(row).toMatchObject({ state: 'ResyncRequired', resyncReason: 'InvalidLog', sequence: 0 });
        expect(row.applyingSequence).toBeUndefined();
    });
});
