import '../../../functions/apiFailover';
import '../../../functions/apiReplicationJobs';
import '../../../orchestrations/resync';
import { TEST_FAILOVER_TASKS } from '../../../orchestrations/testFailover';
import { HvrError } from '../../../shared/errors';
import { DryRunFailoverInfrastructure } from '../../../shared/failover/dryRunInfrastructure';
import { listFailoverDisks } from '../../../shared/failover/failoverDisks';
import { setFailoverInfrastructure } from '../../../shared/failover/settings';
import { instanceIds } from '../../../shared/lifecycle/instances';
import { getDrill, listDrills } from '../../../shared/state/drills';
import { createJob, getJob, listJobs, newJob } from '../../../shared/state/jobs';
import { createProtectedItem, getProtectedItem } from '../../../shared/state/protectedItems';
import { holdNextActivityCall } from '../../orchestrations/fixtures/holdActivity';
import { ApiResponse, LifecycleHarness, protectedVmRow } from '../../orchestrations/lifecycle/harness';
import { action as failoverAction, seedFailoverVm, waitForInstance } from '../../orchestrations/lifecycle/failoverSeed';

/** Cancel and restart of jobs through the API (functions/jobControl.ts), with the durable runtime on a virtual clock. */
describe('POST /api/replicationJobs/{jobId}/cancel and /restart', () => {
    let h: LifecycleHarness;
    beforeEach(() => {
        h = new LifecycleHarness();
    });
    afterEach(() => h.close());

    const action = (jobId: string, name: 'cancel' | 'restart') =>
        h.http('apiReplicationJobAction', {
            method: 'POST',
            path: `replicationJobs/${jobId}/${name}`,
            params: { jobId, action: name },
        });
    const job = async (jobId: string) =>
        (
            await h.http('apiReplicationJob', {
                method: 'GET',
                path: `replicationJobs/${jobId}`,
                params: { jobId },
            })
        ).jsonBody!;

    /** A call that waits for the runtime (a terminate is carried out by the runtime): drive it meanwhile. */
    async function whileDriving(call: Promise<ApiResponse>): Promise<ApiResponse> {
        let done = false;
        const result = call.finally(() => {
            done = true;
        });
        while (!done) {
            await h.runtime.runUntilIdle();
            await new Promise((r) => setTimeout(r, 50));
        }
        return result;
    }

    it('cancels a running enable: the job is Cancelled, the item EnablingFailed, and enable works again', async () => {
        await h.seedSiteAndPolicy();
        const started = await h.enable('vmC');
        const jobId = started.jsonBody!.jobId as string;
        expect((await job(jobId)).actions).toEqual(['Cancel']);

        const cancelled = await whileDriving(action(jobId, 'cancel'));
        expect(cancelled.status).toBe(200);
        expect(cancelled.jsonBody).toMatchObject({ jobId, state: 'Cancelled' });
        expect((await h.runtime.getStatus(instanceIds.enableProtection('vmC')))?.runtimeStatus).toBe('Terminated');
        const shown = await job(jobId);
        expect(shown).toMatchObject({ state: 'Cancelled', actions: [] });
        expect(shown.errors).toEqual([
            expect.objectContaining({ code: 'CANCELLED', message: 'Cancelled by function key.' }),
        ]);
        // What ran before the stop keeps its result; the rest is Cancelled.
        const states = shown.tasks.map((t: { state: string }) => t.state);
        expect(states).toContain('Cancelled');
        expect(states.every((s: string) => s === 'Succeeded' || s === 'Cancelled')).toBe(true);
        const item = await getProtectedItem(h.scope, 'vmC');
        expect(item).toMatchObject({ protectionState: 'EnablingFailed', replicationHealth: 'Critical' });
        expect(item?.healthReasons[0]?.message).toMatch(/cancelled by function key; enable it again, or disable/);

        const again = await h.enable('vmC');
        expect(again.status).toBe(202);
        await h.runtime.runUntilIdle();
        expect((await job(again.jsonBody!.jobId as string)).state).toBe('Succeeded');
        expect((await getProtectedItem(h.scope, 'vmC'))?.protectionState).toBe('InitialReplicationInProgress');
    });

    it('refuses to cancel a finished job with 409 saying how it ended, and leaves it as it was', async () => {
        await h.seedSiteAndPolicy();
        const started = await h.enable('vmF');
        await h.runtime.runUntilIdle();
        const jobId = started.jsonBody!.jobId as string;
        const before = await getJob(h.scope, jobId);
        expect(before?.state).toBe('Succeeded');
        const refused = await action(jobId, 'cancel');
        expect(refused.status).toBe(409);
        expect(refused.jsonBody?.error).toEqual({
            code: 'CONFLICT',
            message: expect.stringMatching(
                new RegExp(
                    `^Job ${jobId} \\(Enable protection\\) has ended Succeeded at .*; only a running job can be cancelled\\.$`,
                ),
            ),
        });
        expect(await getJob(h.scope, jobId)).toEqual(before);
    });

    it('refuses kinds that cannot be cancelled (409 naming those that can), and unknown jobs (404)', async () => {
        const at = h.clock.now().toISOString();
        await createProtectedItem(h.scope, protectedVmRow('vmD', at));
        await createJob(h.scope, {
            ...newJob(
                'job-disable',
                'DisableProtection',
                'vmD',
                ['Stopping the replication monitor'],
                at,
                'disable:vmD',
            ),
            state: 'InProgress',
        });
        const refused = await action('job-disable', 'cancel');
        expect(refused.status).toBe(409);
        expect(refused.jsonBody?.error.message).toBe(
            'A Disable protection job cannot be cancelled once started; jobs that can: Resynchronize, EnableProtection, TestFailover.',
        );
        expect((await action('no-such-job', 'cancel')).status).toBe(404);
        expect((await action('no-such-job', 'restart')).status).toBe(404);
    });

    it('refuses to cancel a job whose orchestration no longer runs it (409), rather than pretend', async () => {
        const at = h.clock.now().toISOString();
        await createProtectedItem(h.scope, protectedVmRow('vmR', at));
        await createJob(h.scope, {
            ...newJob('job-resync', 'Resynchronize', 'vmR', ['Preparing'], at, instanceIds.resync('vmR')),
            state: 'InProgress',
        });
        const refused = await action('job-resync', 'cancel');
        expect(refused.status).toBe(409);
        expect(refused.jsonBody?.error.message).toMatch(
            /its orchestration resync:vmR is not running it \(no instance\)/,
        );
        expect((await getJob(h.scope, 'job-resync'))?.state).toBe('InProgress');
    });

    it('restarts a failed enable with the same VM description, as a new job that records who asked', async () => {
        await h.seedSiteAndPolicy();
        h.createReplicaFailures.push(new HvrError('REPLICA_STATE_INVALID', 'The replica is in a state it cannot be.'));
        const started = await h.enable('vmE');
        await h.runtime.runUntilIdle();
        const failedId = started.jsonBody!.jobId as string;
        expect(await job(failedId)).toMatchObject({ state: 'Failed', actions: ['Restart'] });
        const described = await getProtectedItem(h.scope, 'vmE');

        const restarted = await action(failedId, 'restart');
        expect(restarted.status).toBe(202);
        expect(restarted.jsonBody).toMatchObject({ restartOf: failedId, instanceId: 'protect:vmE' });
        const newId = restarted.jsonBody!.jobId as string;
        expect(newId).not.toBe(failedId);
        await h.runtime.runUntilIdle();
        expect(await job(newId)).toMatchObject({
            kind: 'EnableProtection',
            state: 'Succeeded',
            requestedBy: { name: 'function key', via: 'FunctionKey' },
        });
        const item = await getProtectedItem(h.scope, 'vmE');
        expect(item?.disks).toEqual(described?.disks);
        expect(item?.vmName).toBe(described?.vmName);

        // The old job stays Failed, and is not restarted twice: another run followed it.
        const twice = await action(failedId, 'restart');
        expect(twice.status).toBe(409);
        expect(twice.jsonBody?.error.message).toBe(
            `Job ${failedId} was already followed by job ${newId} (Succeeded) of the same kind; restart that one if it failed.`,
        );
    });

    it('refuses to restart a job that did not fail, or one whose choices are the operator’s (409)', async () => {
        const at = h.clock.now().toISOString();
        await createProtectedItem(h.scope, protectedVmRow('vmT', at));
        await createJob(h.scope, {
            ...newJob('job-ok', 'Resynchronize', 'vmT', ['Preparing'], at),
            state: 'Succeeded',
        });
        await createJob(h.scope, { ...newJob('job-tfo', 'TestFailover', 'vmT', ['Preparing'], at), state: 'Failed' });
        const ok = await action('job-ok', 'restart');
        expect(ok.status).toBe(409);
        expect(ok.jsonBody?.error.message).toBe('Job job-ok is Succeeded; only a failed job can be restarted.');
        const tfo = await action('job-tfo', 'restart');
        expect(tfo.status).toBe(409);
        expect(tfo.jsonBody?.error.message).toMatch(
            /^A Test failover job cannot be restarted; start the operation again/,
        );
    });

    describe('of a running test failover', () => {
        let infra: DryRunFailoverInfrastructure;
        let restoreInfra: () => void;
        beforeEach(() => {
            infra = new DryRunFailoverInfrastructure();
            restoreInfra = setFailoverInfrastructure(infra);
        });
        afterEach(() => restoreInfra());

        const recordsTask = (type: string, task: string) => (input: unknown) =>
            ((input as { jobChanges?: { type: string; task?: string }[] }).jobChanges ?? []).some(
                (c) => c.type === type && c.task === task,
            );

        /** Starts a drill of `vmId` (two recovery points) and drives it until `held` is called. */
        async function drillUntilHeld(vmId: string, held: ReturnType<typeof holdNextActivityCall>) {
            await seedFailoverVm(h, vmId, [
                ['c1', 0x11],
                ['c2', 0x22],
            ]);
            const started = await failoverAction(h, vmId, 'testFailover');
            expect(started.status).toBe(202);
            const driving = h.runtime.runUntilIdle();
            await held.entered;
            return { ...(started.jsonBody as { jobId: string; drillId: string; instanceId: string }), driving };
        }

        /**
         * Cancels the job while `held` holds one of its activity calls: the call returns once the terminate is in
         * (the embedded runtime takes a terminate when the running activity returns; the real engine at once, the
         * activity finishing all the same).
         */
        async function cancelWhileHeld(
            jobId: string,
            held: ReturnType<typeof holdNextActivityCall>,
            driving: Promise<void>,
        ): Promise<ApiResponse> {
            const terminate = jest.spyOn(h.runtime, 'terminate');
            try {
                let answered = false;
                const cancelling = action(jobId, 'cancel').finally(() => {
                    answered = true;
                });
                while (terminate.mock.results.length === 0 && !answered) await new Promise((r) => setTimeout(r, 20));
                await terminate.mock.results[0]?.value;
                held.release();
                await driving;
                return await whileDriving(cancelling);
            } finally {
                terminate.mockRestore();
            }
        }

        it('cancels a drill whose resources exist: Cancelled by whom, its cleanup job removes them, a new drill can start', async () => {
            // Held as it is about to create the VM's resources: the cancel lands while that Azure call is under way.
            const held = holdNextActivityCall('createDrillResources');
            const { jobId, drillId, instanceId, driving } = await drillUntilHeld('vmX', held);
            expect(await listFailoverDisks(h.scope.conn, 'vmX', drillId)).toHaveLength(2);
            expect((await job(jobId)).actions).toEqual(['Cancel']);

            const cancelled = await cancelWhileHeld(jobId, held, driving);
            // The call under way finished: the drill had its VNet, disks, NIC and VM.
            expect(
                infra.operations
                    .filter((o) => o.op === 'create')
                    .map((o) => o.kind)
                    .sort(),
            ).toEqual(['disk', 'disk', 'networkInterface', 'virtualMachine', 'virtualNetwork']);
            expect(cancelled.status).toBe(200);
            expect(cancelled.jsonBody).toEqual({
                jobId,
                instanceId,
                state: 'Cancelled',
                cleanupJobId: expect.any(String),
            });
            expect((await h.runtime.getStatus(instanceId))?.runtimeStatus).toBe('Terminated');
            const shown = await job(jobId);
            expect(shown).toMatchObject({ kind: 'TestFailover', state: 'Cancelled', actions: [] });
            expect(shown.errors).toEqual([
                expect.objectContaining({ code: 'CANCELLED', message: 'Cancelled by function key.' }),
            ]);
            // The step under way at the stop is Cancelled; those that had ended keep their state.
            expect(shown.tasks.map((t: { state: string }) => t.state)).toEqual(['Succeeded', 'Succeeded', 'Cancelled']);

            const cleanupJobId = cancelled.jsonBody!.cleanupJobId as string;
            await waitForInstance(h, instanceIds.testFailoverCleanup('vmX'));
            expect(await job(cleanupJobId)).toMatchObject({
                kind: 'TestFailoverCleanup',
                vmId: 'vmX',
                state: 'Succeeded',
                requestedBy: { name: 'function key', via: 'FunctionKey' },
            });
            expect(await infra.listDrillResources(drillId)).toEqual([]);
            expect(
                infra.operations
                    .filter((o) => o.op === 'delete')
                    .map((o) => o.kind)
                    .sort(),
            ).toEqual(['disk', 'disk', 'networkInterface', 'virtualMachine', 'virtualNetwork']);
            expect(await listFailoverDisks(h.scope.conn, 'vmX', drillId)).toEqual([]);
            expect(await getDrill(h.scope, 'vmX', drillId)).toMatchObject({ state: 'CleanedUp', cleanedUp: true });
            // As ASR after a cleanup: no drill on the item; a cancelled drill is not a successful test failover.
            const item = (await getProtectedItem(h.scope, 'vmX'))!;
            expect(item).toMatchObject({ protectionState: 'Protected', testFailoverState: 'None' });
            expect(item.lastSuccessfulTestFailoverTime).toBeUndefined();

            const again = await failoverAction(h, 'vmX', 'testFailover');
            expect(again.status).toBe(202);
            await waitForInstance(h, instanceId);
            expect(await job(again.jsonBody!.jobId as string)).toMatchObject({ state: 'Succeeded' });
            expect((await getProtectedItem(h.scope, 'vmX'))?.testFailoverState).toBe('TestFailoverCleanupPending');
        });

        it('cancels a drill stopped before it planned anything: the item goes back to None, no cleanup job', async () => {
            // Held at its first record, before it asks for a plan.
            const held = holdNextActivityCall('recordLifecycle', recordsTask('taskStarted', TEST_FAILOVER_TASKS[0]));
            const { jobId, instanceId, driving } = await drillUntilHeld('vmY', held);
            expect((await getProtectedItem(h.scope, 'vmY'))?.testFailoverState).toBe('TestFailoverInProgress');

            const cancelled = await cancelWhileHeld(jobId, held, driving);
            expect(cancelled.status).toBe(200);
            expect(cancelled.jsonBody).toEqual({ jobId, instanceId, state: 'Cancelled' });
            const shown = await job(jobId);
            expect(shown).toMatchObject({ state: 'Cancelled', actions: [] });
            expect(shown.tasks.map((t: { state: string }) => t.state)).toEqual(['Cancelled', 'Cancelled', 'Cancelled']);
            expect(await getProtectedItem(h.scope, 'vmY')).toMatchObject({
                protectionState: 'Protected',
                testFailoverState: 'None',
                testFailoverStateDescription: 'None',
            });
            expect((await listJobs(h.scope, { vmId: 'vmY' })).map((j) => j.kind)).toEqual(['TestFailover']);
            expect(infra.operations).toEqual([]);
            expect(await listDrills(h.scope, 'vmY')).toEqual([]);

            const again = await failoverAction(h, 'vmY', 'testFailover');
            expect(again.status).toBe(202);
            await waitForInstance(h, instanceId);
            expect(await job(again.jsonBody!.jobId as string)).toMatchObject({ state: 'Succeeded' });
        });

        it('refuses to restart a cancelled or a failed test failover (409): its recovery point is the operator’s', async () => {
            const held = holdNextActivityCall('recordLifecycle', recordsTask('taskStarted', TEST_FAILOVER_TASKS[0]));
            const { jobId, driving } = await drillUntilHeld('vmZ', held);
            const cancelled = await cancelWhileHeld(jobId, held, driving);
            expect(cancelled.status).toBe(200);
            const refused = await action(jobId, 'restart');
            expect(refused.status).toBe(409);
            expect(refused.jsonBody?.error.message).toBe(
                `Job ${jobId} is Cancelled; only a failed job can be restarted.`,
            );

            const failing = await failoverAction(h, 'vmZ', 'testFailover', {
                recoveryPoint: { type: 'Custom', recoveryPointId: 'vmZ:c9' },
            });
            expect(failing.status).toBe(202);
            await waitForInstance(h, failing.jsonBody!.instanceId as string);
            const failedId = failing.jsonBody!.jobId as string;
            expect(await job(failedId)).toMatchObject({ kind: 'TestFailover', state: 'Failed', actions: [] });
            const jobsBefore = await listJobs(h.scope, { vmId: 'vmZ' });
            const again = await action(failedId, 'restart');
            expect(again.status).toBe(409);
            expect(again.jsonBody?.error).toEqual({
                code: 'CONFLICT',
                message: expect.stringMatching(
                    /^A Test failover job cannot be restarted; start the operation again with its choices\. Jobs that can: /,
                ),
            });
            expect(await listJobs(h.scope, { vmId: 'vmZ' })).toEqual(jobsBefore);
            expect((await getProtectedItem(h.scope, 'vmZ'))?.testFailoverState).toBe('None');
        });
    });
});
