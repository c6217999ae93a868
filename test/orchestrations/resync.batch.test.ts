import '../../orchestrations/resync';
import { RESYNC_TASKS } from '../../orchestrations/resync';
import type { ResyncStatus } from '../../orchestrations/resync/events';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { registerReplicaDisk } from '../../shared/replica/replicaDisk';
import { createProtectedItem } from '../../shared/state/protectedItems';
import { describeOnEngines } from '../support/durableEngines';
import { uniqueName } from '../support/azurite';
import { holdNextActivityCall } from './fixtures/holdActivity';
import { EngineHarness } from './lifecycle/engineHarness';
import { protectedVmRow } from './lifecycle/harness';

const MiB = 1024 * 1024;
const DISKS = ['d0', 'd1'];

/**
 * The resync's wait for the provider gets two messages of different names in one batch (they queue while the
 * record of "transfer started" is held): a ResyncProgress for d0 and a ResyncCompleted that reports d1 only (so
 * the resync is not yet complete). Both must count: a wait that keeps only the Task.any winner loses the second,
 * and a lost ResyncCompleted or digest request leaves the resync waiting for the provider's timeout.
 */
describeOnEngines('resync: provider messages in one batch', (engine) => {
    let h: EngineHarness;
    beforeEach(async () => {
        h = new EngineHarness(engine());
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    it('counts every message of the batch, whatever its name', async () => {
        const e = engine();
        const vmId = uniqueName(`rsb${e.name}`);
        const at = h.now().toISOString();
        await createProtectedItem(
            h.scope,
            protectedVmRow(vmId, at, {
                disks: DISKS.map((diskId, i) => ({
                    diskId,
                    sizeBytes: MiB,
                    logicalSectorBytes: 512,
                    isOsDisk: i === 0,
                })),
                resynchronizationState: 'ResynchronizationRequired',
                resyncReason: 'ChainGap',
            }),
        );
        for (const diskId of DISKS) {
            await registerReplicaDisk(h.scope, { vmId, siteId: 'site1', diskId, sizeBytes: MiB, createdAt: h.now() });
        }
        const transfer = RESYNC_TASKS[3];
        const held = holdNextActivityCall('recordLifecycle', (input) =>
            ((input as { jobChanges?: { type: string; task?: string }[] }).jobChanges ?? []).some(
                (c) => c.type === 'taskStarted' && c.task === transfer,
            ),
        );
        const instanceId = instanceIds.resync(vmId);
        try {
            await e.startNew('resync', {
                instanceId,
                input: { vmId, siteId: 'site1', reason: 'ChainGap', requestedAt: at },
            });
            const running = e.progress();
            await held.entered;
            const resyncId = ((await e.status(instanceId))!.customStatus as ResyncStatus).resyncId;
            await e.raiseEvent(instanceId, lifecycleEvents.resyncProgress, {
                vmId,
                resyncId,
                disks: { d0: 40 },
                at: h.now().toISOString(),
            });
            await e.raiseEvent(instanceId, lifecycleEvents.resyncCompleted, {
                vmId,
                resyncId,
                disks: { d1: 70 },
                at: h.now().toISOString(),
            });
            held.release();
            await running;
        } finally {
            held.restore();
        }
        const disks = async () => ((await e.status(instanceId))?.customStatus as ResyncStatus | undefined)?.disks;
        await h.until(disks, { d0: 40, d1: 70 }, 60_000);
        await e.terminate(instanceId, 'test over');
    });
});
