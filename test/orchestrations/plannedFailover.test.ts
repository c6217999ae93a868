import '../../functions/apiFailover';
import '../../functions/apiReplicationProtectedItems';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { failoverPageBlob, listFailoverDisks } from '../../shared/failover/failoverDisks';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { FailoverShutdownEvent, lifecycleEvents } from '../../shared/lifecycle/instances';
import { getDrill, listDrills } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { DURABLE_TIME_SCALE_SETTING, scaledMs } from '../../shared/durableTime';
import { describeOnEngines, isFinished } from '../support/durableEngines';
import { uniqueName } from '../support/azurite';
import { action, addRecoveryPoint, mapCorp, seedFailoverVm } from './lifecycle/failoverSeed';
import { EngineHarness } from './lifecycle/engineHarness';

// The provider's shutdown timeout and the final point's poll a hundred times shorter: the 1,000 s timeout takes
// 10 s, long enough for a test's confirmation to land first on a loaded machine, and the 5 s poll 50 ms.
process.env[DURABLE_TIME_SCALE_SETTING] = '0.01';
const TIMEOUT_SECONDS = 1_000;

describeOnEngines('planned failover: shutdown, final cycle, zero data loss (Azurite, dry-run ARM)', (engine) => {
    let h: EngineHarness;
    let infra: DryRunFailoverInfrastructure;
    let restoreInfra: () => void;

    beforeEach(() => {
        h = new EngineHarness(engine());
        infra = new DryRunFailoverInfrastructure();
        restoreInfra = setFailoverInfrastructure(infra);
        process.env.PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS = String(TIMEOUT_SECONDS);
    });
    afterEach(() => {
        delete process.env.PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS;
        restoreInfra();
        h.close();
    });
    const waitForInstance = (instanceId: string) => engine().waitFor(instanceId, isFinished);

    const sent = (type: string) => h.published.filter((p) => p.input.type === type);

    async function startPlanned(
        vmId: string,
    ): Promise<{ jobId: string; drillId: string; instanceId: string; requestedAt: Date }> {
        await seedFailoverVm(h, vmId, [
            ['c1', 0x11],
            ['c2', 0x22],
        ]);
        await mapCorp(h);
        const requestedAt = h.now();
        const started = await action(h, vmId, 'plannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] });
        expect(started.status).toBe(202);
        const { jobId, drillId, instanceId } = started.jsonBody!;
        await h.until(async () => sent('ShutdownForFailover').length > 0, true);
        return { jobId, drillId, instanceId, requestedAt };
    }

    function confirmation(vmId: string, failoverId: string, cycleId: string): FailoverShutdownEvent {
        return {
            vmId,
            failoverId,
            shutDownAt: h.now().toISOString(),
            cycleId,
            logs: [
                { diskId: 'os', sequence: 3, logId: 'l-os-3', bytes: 4608 },
                { diskId: 'data', sequence: 3, logId: 'l-data-3', bytes: 4608 },
            ],
            at: h.now().toISOString(),
        };
    }

    it('asks the provider to shut down, applies the final cycle and fails over onto it: disks as at shutdown, RPO 0', async () => {
        const vm1 = uniqueName('vm1');
        const { jobId, drillId, instanceId, requestedAt } = await startPlanned(vm1);
        const [shutdown] = sent('ShutdownForFailover');
        expect(shutdown!.input).toMatchObject({
            siteId: 'site1',
            vmId: vm1,
            payload: { vmId: vm1, failoverId: drillId },
        });
        // The scaled timeout from the orchestration's "now", between the request and the send (equal on the
        // virtual clock, which does not move meanwhile).
        const respondBy = Date.parse((shutdown!.input.payload as { respondBy: string }).respondBy);
        expect(respondBy).toBeGreaterThanOrEqual(requestedAt.getTime() + scaledMs(TIMEOUT_SECONDS * 1000));
        expect(respondBy).toBeLessThanOrEqual(shutdown!.at.getTime() + scaledMs(TIMEOUT_SECONDS * 1000));
        // Replication still runs while the provider shuts the VM down: nothing stopped, nothing created yet.
        expect(sent('StopReplication')).toEqual([]);
        expect(infra.operations).toEqual([]);
        expect(await getProtectedItem(h.scope, vm1)).toMatchObject({
            protectionState: 'PlannedFailoverInProgress',
            protectionStateDescription: 'Planned failover in progress',
        });

        // A late confirmation of some other failover is not this one's.
        await engine().raiseEvent(instanceId, lifecycleEvents.failoverShutdownCompleted, {
            ...confirmation(vm1, 'fo-older', 'final-old'),
        });
        // The provider: the VM is off, its last writes (0x44) go up as the final cycle, the merge records its point.
        await addRecoveryPoint(h, vm1, 'final-1', 0x44, 3);
        await engine().raiseEvent(instanceId, lifecycleEvents.failoverShutdownCompleted, {
            ...confirmation(vm1, drillId, 'final-1'),
            shutDownAt: new Date(h.now().getTime() - 5_000).toISOString(),
        });
        await waitForInstance(instanceId);

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
        expect(job.tasks[2]!.detail).toContain(`${vm1}:final-1`);
        const drill = (await getDrill(h.scope, vm1, drillId))!;
        expect(drill).toMatchObject({ state: 'Completed', recoveryPointId: `${vm1}:final-1`, rpoSeconds: 0 });
        for (const blobName of drill.failoverBlobs) {
            const bytes = await failoverPageBlob(h.scope.conn.blob, blobName).downloadToBuffer(0, 4096);
            expect(bytes.equals(Buffer.alloc(4096, 0x44))).toBe(true);
        }
        expect(await getProtectedItem(h.scope, vm1)).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: `${vm1}:final-1`,
        });
        // StopReplication went only after the final point existed, and no cancel was sent.
        const order = h.published.map((p) => p.input.type);
        expect(order.indexOf('StopReplication')).toBeGreaterThan(order.indexOf('ShutdownForFailover'));
        expect(sent('CancelFailoverShutdown')).toEqual([]);
        const item = await h.http('apiReplicationProtectedItem', {
            method: 'GET',
            path: `replicationProtectedItems/${vm1}`,
            params: { vmId: vm1 },
        });
        expect(item.jsonBody!.properties.allowedOperations).toEqual(['ChangePit', 'Commit']);
    });

    it('fails with the VM still protected and nothing in Azure when the provider never confirms the shutdown', async () => {
        const vm2 = uniqueName('vm2');
        const { jobId, instanceId } = await startPlanned(vm2);
        await waitForInstance(instanceId);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.state).toBe('Failed');
        expect(job.errors[0]).toMatchObject({ code: 'TIMEOUT', task: 'Shutting down the virtual machine' });
        expect(job.errors[0]!.message).toContain(`within ${TIMEOUT_SECONDS} s`);
        expect(job.errors[0]!.message).toContain('keeps running on premises');
        // The provider is told to start the VM again; replication was never stopped; Azure untouched.
        expect(sent('CancelFailoverShutdown').map((p) => p.input.payload)).toEqual([
            expect.objectContaining({ vmId: vm2, failoverId: `fo-${jobId}` }),
        ]);
        expect(sent('StopReplication')).toEqual([]);
        expect(infra.operations).toEqual([]);
        expect(await listDrills(h.scope, vm2)).toEqual([]);
        expect(await listFailoverDisks(h.scope.conn, vm2, `fo-${jobId}`)).toEqual([]);
        const item = await h.http('apiReplicationProtectedItem', {
            method: 'GET',
            path: `replicationProtectedItems/${vm2}`,
            params: { vmId: vm2 },
        });
        expect(item.jsonBody!.properties).toMatchObject({
            protectionState: 'Protected',
            allowedOperations: expect.arrayContaining(['PlannedFailover', 'UnplannedFailover', 'TestFailover']),
        });
        // It can be tried again at once.
        expect((await action(h, vm2, 'plannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] })).status).toBe(
            202,
        );
    });

    it('cancels when the final cycle is confirmed but never applied, leaving nothing behind', async () => {
        const vm3 = uniqueName('vm3');
        const { jobId, drillId, instanceId } = await startPlanned(vm3);
        await engine().raiseEvent(
            instanceId,
            lifecycleEvents.failoverShutdownCompleted,
            confirmation(vm3, drillId, 'final-lost'),
        );
        await waitForInstance(instanceId);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.errors[0]).toMatchObject({ code: 'TIMEOUT', task: 'Synchronizing the latest data' });
        expect(job.errors[0]!.message).toContain('final-lost');
        expect(sent('CancelFailoverShutdown')).toHaveLength(1);
        expect(sent('StopReplication')).toEqual([]);
        expect(infra.operations).toEqual([]);
        expect(await getProtectedItem(h.scope, vm3)).toMatchObject({ protectionState: 'Protected' });
    });

    it('refuses a planned failover of a failed-over VM (no longer replicating), listing what is allowed', async () => {
        const vm4 = uniqueName('vm4');
        const { instanceId } = await startPlanned(vm4);
        const again = await action(h, vm4, 'unplannedFailover');
        // The running planned failover answers for itself (same instance), it does not start a second one.
        expect(again.jsonBody).toMatchObject({ alreadyRunning: true });
        await waitForInstance(instanceId);
        const unplanned = await action(h, vm4, 'unplannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] });
        await waitForInstance(unplanned.jsonBody!.instanceId);
        expect(await getProtectedItem(h.scope, vm4)).toMatchObject({ protectionState: 'FailedOver' });
        const refused = await action(h, vm4, 'plannedFailover');
        expect(refused.status).toBe(409);
        expect(refused.jsonBody!.error).toMatchObject({
            code: 'CONFLICT',
            allowedOperations: ['ChangePit', 'Commit'],
        });
        expect(refused.jsonBody!.error.message).toContain('allowed operations: ChangePit, Commit');
    });
});
