import '../../functions/apiReplicationProtectedItems';
import { INITIAL_REPLICATION_CYCLE_ID } from '../../shared/contracts/ids';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { getProtectedItem } from '../../shared/state/protectedItems';
import type { EnableProtectionStatus } from '../../orchestrations/enableProtection';
import { describeOnEngines } from '../support/durableEngines';
import { holdNextActivityCall } from './fixtures/holdActivity';
import { EngineHarness } from './lifecycle/engineHarness';

/**
 * Enable protection's initial-replication wait gets several events in one batch: three progress reports (two
 * of one name more than it has open waiters) and the CycleComplete of the initial point, all queued while its
 * record activity is held. Every one must count: the last progress is recorded and the CycleComplete completes
 * initial replication (a loop that reads only the Task.any winner loses it and waits for the timeout).
 */
describeOnEngines('enable protection: events in one batch', (engine) => {
    let h: EngineHarness;
    beforeEach(async () => {
        h = new EngineHarness(engine());
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    it('handles every event of the batch: progress reports of one name and the initial CycleComplete', async () => {
        const vmId = `vmBatch${engine().name}`;
        const response = await h.enable(vmId);
        expect(response.status).toBe(202);
        const instanceId = instanceIds.enableProtection(vmId);
        await engine().waitFor(
            instanceId,
            (s) => (s.customStatus as EnableProtectionStatus | null)?.stage === 'InitialReplicationInProgress',
        );
        const at = () => h.now().toISOString();
        const held = holdNextActivityCall('recordLifecycle');
        try {
            await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
                vmId,
                disks: { os: 30, data: 10 },
                at: at(),
            });
            const running = engine().progress();
            await held.entered;
            await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
                vmId,
                disks: { os: 60, data: 40 },
                at: at(),
            });
            await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
                vmId,
                disks: { os: 100, data: 100 },
                at: at(),
            });
            await engine().raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
                vmId,
                cycleId: INITIAL_REPLICATION_CYCLE_ID,
                recoveryPointId: `${vmId}:${INITIAL_REPLICATION_CYCLE_ID}`,
                consistency: 'CrashConsistent',
                capturedAt: at(),
            });
            held.release();
            await running;
        } finally {
            held.restore();
        }
        const done = await engine().waitFor(instanceId, (s) => s.runtimeStatus !== 'Running', 60_000);
        expect(done.runtimeStatus).toBe('Completed');
        expect(await getProtectedItem(h.scope, vmId)).toMatchObject({ protectionState: 'Protected' });
        await engine().terminate(instanceIds.replicationMonitor(vmId), 'test over');
    });
});
