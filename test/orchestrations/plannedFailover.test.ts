import '../../functions/apiFailover';
import '../../functions/apiReplicationProtectedItems';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { failoverPageBlob, listFailoverDisks } from '../../shared/failover/failoverDisks';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { FailoverShutdownEvent, lifecycleEvents } from '../../shared/lifecycle/instances';
import { getDrill, listDrills } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { action, addRecoveryPoint, mapCorp, seedFailoverVm, waitForInstance } from './lifecycle/failoverSeed';
import { LifecycleHarness } from './lifecycle/harness';

const TIMEOUT_SECONDS = 600;

describe('planned failover: shutdown, final cycle, zero data loss (durable runtime, virtual clock, Azurite)', () => {
    let h: LifecycleHarness;
    let infra: DryRunFailoverInfrastructure;
    let restoreInfra: () => void;

    beforeEach(() => {
        h = new LifecycleHarness();
        infra = new DryRunFailoverInfrastructure();
        restoreInfra = setFailoverInfrastructure(infra);
        process.env.PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS = String(TIMEOUT_SECONDS);
    });
    afterEach(async () => {
        delete process.env.PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS;
        restoreInfra();
        await h.close();
    });

    const sent = (type: string) => h.published.filter((p) => p.input.type === type);

    async function startPlanned(vmId: string): Promise<{ jobId: string; drillId: string; instanceId: string }> {
        await seedFailoverVm(h, vmId, [
            ['c1', 0x11],
            ['c2', 0x22],
        ]);
        await mapCorp(h);
        const started = await action(h, vmId, 'plannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] });
        expect(started.status).toBe(202);
        const { jobId, drillId, instanceId } = started.jsonBody!;
        await h.runtime.advanceUntil(() => sent('ShutdownForFailover').length > 0);
        return { jobId, drillId, instanceId };
    }

    function confirmation(vmId: string, failoverId: string, cycleId: string): FailoverShutdownEvent {
        return {
            vmId,
            failoverId,
            shutDownAt: h.clock.now().toISOString(),
            cycleId,
            logs: [
                { diskId: 'os', sequence: 3, logId: 'l-os-3', bytes: 4608 },
                { diskId: 'data', sequence: 3, logId: 'l-data-3', bytes: 4608 },
            ],
            at: h.clock.now().toISOString(),
        };
    }

    it('asks the provider to shut down, applies the final cycle and fails over onto it: disks as at shutdown, RPO 0', async () => {
        const { jobId, drillId, instanceId } = await startPlanned('vm1');
        const shutdown = sent('ShutdownForFailover')[0]!.input;
        expect(shutdown).toMatchObject({
            siteId: 'site1',
            vmId: 'vm1',
            payload: {
                vmId: 'vm1',
                failoverId: drillId,
                respondBy: new Date(h.clock.now().getTime() + TIMEOUT_SECONDS * 1000).toISOString(),
            },
        });
        // Replication still runs while the provider shuts the VM down: nothing stopped, nothing created yet.
        expect(sent('StopReplication')).toEqual([]);
        expect(infra.operations).toEqual([]);
        expect(await getProtectedItem(h.scope, 'vm1')).toMatchObject({
            protectionState: 'PlannedFailoverInProgress',
            protectionStateDescription: 'Planned failover in progress',
        });

        // A late confirmation of some other failover is not this one's.
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.failoverShutdownCompleted, {
            ...confirmation('vm1', 'fo-older', 'final-old'),
        });
        // The provider: the VM is off, its last writes (0x44) go up as the final cycle, the merge records its point.
        h.clock.advanceBy(20_000);
        await addRecoveryPoint(h, 'vm1', 'final-1', 0x44, 3);
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.failoverShutdownCompleted, {
            ...confirmation('vm1', drillId, 'final-1'),
            shutDownAt: new Date(h.clock.now().getTime() - 5_000).toISOString(),
        });
        await waitForInstance(h, instanceId);

        const job = (await getJob(h.scope, jobId))!;
        expect(job).toMatchObject({ kind: 'PlannedFailover', displayName: 'Planned failover', state: 'Succeeded' });
        expect(job.tasks.map((t) => [t.name, t.state])).toEqual([
            ['Prerequisites check for planned failover', 'Succeeded'],
            ['Shutting down the virtual machine', 'Succeeded'],
            ['Synchronizing the latest data', 'Succeeded'],
            ['Stopping replication', 'Succeeded'],
            ['Preparing the failover disks', 'Succeeded'],
            ['Creating the virtual machine in Azure', 'Succeeded'],
        ]);
        expect(job.tasks[2]!.detail).toContain('vm1:final-1');
        const drill = (await getDrill(h.scope, 'vm1', drillId))!;
        expect(drill).toMatchObject({ state: 'Completed', recoveryPointId: 'vm1:final-1', rpoSeconds: 0 });
        for (const blobName of drill.failoverBlobs) {
            const bytes = await failoverPageBlob(h.scope.conn.blob, blobName).downloadToBuffer(0, 4096);
            expect(bytes.equals(Buffer.alloc(4096, 0x44))).toBe(true);
        }
        expect(await getProtectedItem(h.scope, 'vm1')).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: 'vm1:final-1',
        });
        // StopReplication went only after the final point existed, and no cancel was sent.
        const order = h.published.map((p) => p.input.type);
        expect(order.indexOf('StopReplication')).toBeGreaterThan(order.indexOf('ShutdownForFailover'));
        expect(sent('CancelFailoverShutdown')).toEqual([]);
        const item = await h.http('apiReplicationProtectedItem', {
            method: 'GET',
            path: 'replicationProtectedItems/vm1',
            params: { vmId: 'vm1' },
        });
        expect(item.jsonBody!.properties.allowedOperations).toEqual(['ChangePit', 'Commit']);
    });

    it('fails with the VM still protected and nothing in Azure when the provider never confirms the shutdown', async () => {
        const { jobId, instanceId } = await startPlanned('vm2');
        await waitForInstance(h, instanceId);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.state).toBe('Failed');
        expect(job.errors[0]).toMatchObject({ code: 'TIMEOUT', task: 'Shutting down the virtual machine' });
        expect(job.errors[0]!.message).toContain(`within ${TIMEOUT_SECONDS} s`);
        expect(job.errors[0]!.message).toContain('keeps running on premises');
        // The provider is told to start the VM again; replication was never stopped; Azure untouched.
        expect(sent('CancelFailoverShutdown').map((p) => p.input.payload)).toEqual([
            expect.objectContaining({ vmId: 'vm2', failoverId: `fo-${jobId}` }),
        ]);
        expect(sent('StopReplication')).toEqual([]);
        expect(infra.operations).toEqual([]);
        expect(await listDrills(h.scope, 'vm2')).toEqual([]);
        expect(await listFailoverDisks(h.scope.conn, 'vm2', `fo-${jobId}`)).toEqual([]);
        const item = await h.http('apiReplicationProtectedItem', {
            method: 'GET',
            path: 'replicationProtectedItems/vm2',
            params: { vmId: 'vm2' },
        });
        expect(item.jsonBody!.properties).toMatchObject({
            protectionState: 'Protected',
            allowedOperations: expect.arrayContaining(['PlannedFailover', 'UnplannedFailover', 'TestFailover']),
        });
        // It can be tried again at once.
        expect(
            (await action(h, 'vm2', 'plannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] })).status,
        ).toBe(202);
    });

    it('cancels when the final cycle is confirmed but never applied, leaving nothing behind', async () => {
        const { jobId, drillId, instanceId } = await startPlanned('vm3');
        await h.runtime.raiseEvent(
            instanceId,
            lifecycleEvents.failoverShutdownCompleted,
            confirmation('vm3', drillId, 'final-lost'),
        );
        await waitForInstance(h, instanceId);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.errors[0]).toMatchObject({ code: 'TIMEOUT', task: 'Synchronizing the latest data' });
        expect(job.errors[0]!.message).toContain('final-lost');
        expect(sent('CancelFailoverShutdown')).toHaveLength(1);
        expect(sent('StopReplication')).toEqual([]);
        expect(infra.operations).toEqual([]);
        expect(await getProtectedItem(h.scope, 'vm3')).toMatchObject({ protectionState: 'Protected' });
    });

    it('refuses a planned failover of a failed-over VM (no longer replicating), listing what is allowed', async () => {
        const { instanceId } = await startPlanned('vm4');
        const again = await action(h, 'vm4', 'unplannedFailover');
        // The running planned failover answers for itself (same instance), it does not start a second one.
        expect(again.jsonBody).toMatchObject({ alreadyRunning: true });
        await waitForInstance(h, instanceId);
        const unplanned = await action(h, 'vm4', 'unplannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] });
        await waitForInstance(h, unplanned.jsonBody!.instanceId);
        expect(await getProtectedItem(h.scope, 'vm4')).toMatchObject({ protectionState: 'FailedOver' });
        const refused = await action(h, 'vm4', 'plannedFailover');
        expect(refused.status).toBe(409);
        expect(refused.jsonBody!.error).toMatchObject({
            code: 'CONFLICT',
            allowedOperations: ['ChangePit', 'Commit'],
        });
        expect(refused.jsonBody!.error.message).toContain('allowed operations: ChangePit, Commit');
    });
});
