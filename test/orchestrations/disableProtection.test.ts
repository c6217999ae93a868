import '../../functions/apiReplicationProtectedItems';
import { HvrError } from '../../shared/errors';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { LifecycleHarness } from './lifecycle/harness';
import { validateEvent } from '../../shared/contracts/validate';

async function protect(h: LifecycleHarness, vmId: string): Promise<string> {
    const { jobId } = (await h.enable(vmId)).jsonBody!;
    await h.runtime.runUntilIdle();
    await h.completeInitialReplication(vmId);
    return jobId as string;
}

function disable(h: LifecycleHarness, vmId: string, keepReplica?: string) {
    return h.http('apiReplicationProtectedItem', {
        method: 'DELETE',
        path: `replicationProtectedItems/${vmId}`,
        params: { vmId },
        query: keepReplica === undefined ? {} : { keepReplica },
    });
}

describe('disable protection', () => {
    let h: LifecycleHarness;
    beforeEach(async () => {
        h = new LifecycleHarness();
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    it('stops the monitor, tells the provider, removes the replica and the item; the job succeeds', async () => {
        await protect(h, 'vmD');
        expect((await h.runtime.getStatus('monitor:vmD'))?.runtimeStatus).toBe('Running');
        const response = await disable(h, 'vmD');
        expect(response.status).toBe(202);
        await h.runtime.runUntilIdle();
        expect((await h.runtime.getStatus('monitor:vmD'))?.runtimeStatus).toBe('Terminated');
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
        await protect(h, 'vmE');
        h.publishFailures = [new HvrError('VM_NOT_FOUND', 'vmE was deleted on host hv02')];
        const response = await disable(h, 'vmE', 'true');
        await h.runtime.runUntilIdle();
        expect(h.replicaCalls.filter((c) => c.input.op === 'removeReplica')).toHaveLength(0);
        const job = await getJob(h.scope, response.jsonBody!.jobId);
        expect(job?.state).toBe('Succeeded');
        expect(job?.tasks[2]?.name).toBe('Keeping replica disks and recovery points');
        expect((await h.runtime.getStatus('disable:vmE'))?.output).toMatchObject({
            result: 'Disabled',
            warnings: [expect.stringContaining('VM_NOT_FOUND')],
        });
    });

    it('cancels an enable still in initial replication', async () => {
        const { jobId } = (await h.enable('vmF')).jsonBody!;
        await h.runtime.runUntilIdle();
        await disable(h, 'vmF');
        await h.runtime.runUntilIdle();
        expect((await h.runtime.getStatus('protect:vmF'))?.runtimeStatus).toBe('Terminated');
        expect((await getJob(h.scope, jobId))?.state).toBe('Succeeded');
        expect(await getProtectedItem(h.scope, 'vmF')).toBeUndefined();
    });

    it('answers 404 for a VM that is not protected and 400 for a bad keepReplica', async () => {
        expect((await disable(h, 'nope')).jsonBody).toEqual({
            error: { code: 'NOT_FOUND', message: 'VM nope is not protected.' },
        });
        await protect(h, 'vmG');
        const bad = await disable(h, 'vmG', 'yes');
        expect(bad.status).toBe(400);
        expect(bad.jsonBody?.error.message).toMatch(/keepReplica must be true or false; got "yes"/);
    });
});
