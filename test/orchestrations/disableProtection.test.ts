import '../../functions/apiReplicationProtectedItems';
import { HvrError } from '../../shared/errors';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { instanceIds } from '../../shared/lifecycle/instances';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { validateEvent } from '../../shared/contracts/validate';
import type { EnableProtectionStatus } from '../../orchestrations/enableProtection';
import { describeOnEngines, isFinished, type EngineStatus } from '../support/durableEngines';
import { EngineHarness } from './lifecycle/engineHarness';

// Retry delays and the initial-replication timeout a thousand times shorter (the real engine has no virtual clock).
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

const stage = (s: EngineStatus) => (s.customStatus as EnableProtectionStatus | null)?.stage;

describeOnEngines('disable protection', (engine) => {
    let h: EngineHarness;
    beforeEach(async () => {
        h = new EngineHarness(engine());
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    /** Enables protection and completes initial replication: the VM is Protected and its monitor runs. */
    async function protect(vmId: string): Promise<string> {
        const { jobId } = (await h.enable(vmId)).jsonBody!;
        await engine().waitFor(instanceIds.enableProtection(vmId), (s) => stage(s) === 'InitialReplicationInProgress');
        await h.completeInitialReplication(vmId);
        await engine().waitFor(instanceIds.enableProtection(vmId), isFinished);
        await engine().waitFor(instanceIds.replicationMonitor(vmId), (s) => s.runtimeStatus === 'Running');
        return jobId as string;
    }

    function disable(vmId: string, keepReplica?: string) {
        return h.http('apiReplicationProtectedItem', {
            method: 'DELETE',
            path: `replicationProtectedItems/${vmId}`,
            params: { vmId },
            query: keepReplica === undefined ? {} : { keepReplica },
        });
    }

    it('stops the monitor, tells the provider, removes the replica and the item; the job succeeds', async () => {
        await protect('vmD');
        expect((await engine().status('monitor:vmD'))?.runtimeStatus).toBe('Running');
        const response = await disable('vmD');
        expect(response.status).toBe(202);
        expect(await engine().waitFor('disable:vmD', isFinished)).toMatchObject({ runtimeStatus: 'Completed' });
        expect((await engine().waitFor('monitor:vmD', isFinished)).runtimeStatus).toBe('Terminated');
        expect(h.published.map((p) => p.input.type)).toEqual(['StartReplication', 'StopReplication']);
        for (const { input } of h.published) {
            expect(() => validateEvent({ type: input.type, version: 1, ...input.payload })).not.toThrow();
        }
        expect(h.replicaCalls.filter((c) => c.input.op === 'removeReplica')).toHaveLength(1);
        expect(await getProtectedItem(h.scope, 'vmD')).toBeUndefined();
        const job = await getJob(h.scope, response.jsonBody!.jobId);
        expect(job).toMatchObject({ kind: 'DisableProtection', state: 'Succeeded' });
        expect(job?.tasks.map((t) => t.state)).toEqual(['Succeeded', 'Succeeded', 'Succeeded', 'Succeeded']);
    });

    it('keeps the replica when asked, and still finishes when the provider says the VM is gone', async () => {
        await protect('vmE');
        h.publishFailures = [new HvrError('VM_NOT_FOUND', 'vmE was deleted on host hv02')];
        const response = await disable('vmE', 'true');
        const done = await engine().waitFor('disable:vmE', isFinished);
        expect(h.replicaCalls.filter((c) => c.input.op === 'removeReplica')).toHaveLength(0);
        const job = await getJob(h.scope, response.jsonBody!.jobId);
        expect(job?.state).toBe('Succeeded');
        expect(job?.tasks[2]?.name).toBe('Keeping replica disks and recovery points');
        expect(done.output).toMatchObject({
            result: 'Disabled',
            warnings: [expect.stringContaining('VM_NOT_FOUND')],
        });
    });

    it('cancels an enable still in initial replication', async () => {
        const { jobId } = (await h.enable('vmF')).jsonBody!;
        await engine().waitFor('protect:vmF', (s) => stage(s) === 'InitialReplicationInProgress');
        await disable('vmF');
        await engine().waitFor('disable:vmF', isFinished);
        expect((await engine().waitFor('protect:vmF', isFinished)).runtimeStatus).toBe('Terminated');
        expect((await getJob(h.scope, jobId))?.state).toBe('Succeeded');
        expect(await getProtectedItem(h.scope, 'vmF')).toBeUndefined();
    });

    it('answers 404 for a VM that is not protected and 400 for a bad keepReplica', async () => {
        expect((await disable('nope')).jsonBody).toEqual({
            error: { code: 'NOT_FOUND', message: 'VM nope is not protected.' },
        });
        await protect('vmG');
        const bad = await disable('vmG', 'yes');
        expect(bad.status).toBe(400);
        expect(bad.jsonBody?.error.message).toMatch(/keepReplica must be true or false; got "yes"/);
        await engine().terminate(instanceIds.replicationMonitor('vmG'), 'test over');
    });
});
