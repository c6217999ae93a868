import '../../../functions/apiReplicationJobs';
import '../../../orchestrations/resync';
import { HvrError } from '../../../shared/errors';
import { instanceIds } from '../../../shared/lifecycle/instances';
import { createJob, getJob, newJob } from '../../../shared/state/jobs';
import { createProtectedItem, getProtectedItem } from '../../../shared/state/protectedItems';
import { ApiResponse, LifecycleHarness, protectedVmRow } from '../../orchestrations/lifecycle/harness';

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
});
