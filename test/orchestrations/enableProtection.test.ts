import '../../functions/apiReplicationProtectedItems';
import { HvrError } from '../../shared/errors';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { EnableProtectionStatus } from '../../orchestrations/enableProtection';
import { LifecycleHarness, START } from './lifecycle/harness';
import { validateEvent } from '../../shared/contracts/validate';

const MINUTE = 60_000;

describe('enable protection', () => {
    let h: LifecycleHarness;
    beforeEach(async () => {
        h = new LifecycleHarness();
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    it('runs enable → initial replication progress → finalize → monitor Protected, end to end', async () => {
        const response = await h.enable('vm1');
        expect(response.status).toBe(202);
        const { jobId, instanceId } = response.jsonBody;
        expect(instanceId).toBe('protect:vm1');
        expect((response.headers as Record<string, string>).Location).toBe(
            `http://localhost:7071/api/replicationJobs/${jobId}`,
        );
        await h.runtime.runUntilIdle();

        const job = await getJob(h.scope, jobId);
        expect(job?.state).toBe('Succeeded');
        expect(job?.tasks.map((t) => [t.name, t.state])).toEqual([
            ['Prerequisites check', 'Succeeded'],
            ['Identifying the replication target', 'Succeeded'],
            ['Enable replication', 'Succeeded'],
            ['Starting initial replication', 'Succeeded'],
            ['Updating the provider states', 'Succeeded'],
        ]);
        expect(h.replicaCalls.map((c) => c.input.op + ':' + (c.input.diskId ?? ''))).toEqual([
            'identifyTarget:',
            'createReplicaDisk:os',
            'createReplicaDisk:data',
        ]);
        expect(h.published.map((p) => p.input.type)).toEqual(['StartReplication']);
        expect(h.published[0]?.input).toMatchObject({
            siteId: 'site1',
            vmId: 'vm1',
            payload: { policyName: 'gold', copyFrequencySeconds: 300, initialReplicationStart: 'Immediately' },
        });
        // What providers receive must pass the published contract.
        const { type, payload } = h.published[0]!.input;
        expect(() => validateEvent({ type, version: 1, ...payload })).not.toThrow();
        expect((await getProtectedItem(h.scope, 'vm1'))?.protectionState).toBe('InitialReplicationInProgress');

        await h.runtime.advance(20 * MINUTE);
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1',
            disks: { os: 40, data: 12.5 },
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        const status = (await h.runtime.getStatus(instanceId))!;
        expect(status.runtimeStatus).toBe('Running');
        expect((status.customStatus as EnableProtectionStatus).initialReplication?.disks).toEqual({
            os: 40,
            data: 12.5,
        });
        expect((await getProtectedItem(h.scope, 'vm1'))?.initialReplicationProgress).toEqual({ os: 40, data: 12.5 });

        await h.runtime.advance(60 * MINUTE);
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1',
            disks: { os: 100, data: 100 },
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        // The provider's word is not enough: nothing is merged yet, so there is nothing to recover to.
        expect((await h.runtime.getStatus(instanceId))?.runtimeStatus).toBe('Running');
        expect(await getProtectedItem(h.scope, 'vm1')).toMatchObject({
            protectionState: 'InitialReplicationInProgress',
            initialReplicationProgress: { os: 100, data: 100 },
        });

        // The merge applied both disks' last initial logs and recorded the `initial` recovery point.
        await h.runtime.advance(5 * MINUTE);
        const capturedAt = new Date(h.clock.now().getTime() - 4 * MINUTE);
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId: 'vm1',
            cycleId: 'initial',
            recoveryPointId: 'vm1:initial',
            consistency: 'CrashConsistent',
            capturedAt: capturedAt.toISOString(),
        });
        await h.runtime.runUntilIdle();

        const done = (await h.runtime.getStatus(instanceId))!;
        expect(done.runtimeStatus).toBe('Completed');
        expect(done.output).toMatchObject({ result: 'Protected', jobId });
        const finalize = await getJob(h.scope, (done.output as { finalizeJobId: string }).finalizeJobId);
        expect(finalize).toMatchObject({ kind: 'FinalizeProtection', state: 'Succeeded' });
        const monitor = await h.runtime.getStatus(instanceIds.replicationMonitor('vm1'));
        expect(monitor?.runtimeStatus).toBe('Running');
        const item = await getProtectedItem(h.scope, 'vm1');
        expect(item).toMatchObject({
            protectionState: 'Protected',
            replicationHealth: 'Normal',
            healthReasons: [],
            lastRecoveryPointId: 'vm1:initial',
            lastCapturedAt: capturedAt.toISOString(),
        });
        // RPO counts from the initial point's capture, not from when monitoring began.
        const rpo = h.metrics.filter((m) => m.name === 'ReplicationRpoSeconds' && m.dimensions.vmId === 'vm1');
        expect(rpo[0]?.value).toBe(4 * 60);
    });

    it("does not complete on a delta cycle's recovery point, only on the initial one", async () => {
        await h.enable('vm1b');
        await h.runtime.runUntilIdle();
        await h.runtime.raiseEvent('protect:vm1b', lifecycleEvents.cycleComplete, {
            vmId: 'vm1b',
            cycleId: 'cycle-1',
            recoveryPointId: 'vm1b:cycle-1',
            consistency: 'CrashConsistent',
            capturedAt: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        expect((await getProtectedItem(h.scope, 'vm1b'))?.protectionState).toBe('InitialReplicationInProgress');
        await h.completeInitialReplication('vm1b');
        expect((await getProtectedItem(h.scope, 'vm1b'))?.protectionState).toBe('Protected');
    });

    it('keeps a VM whose initial log was quarantined out of Protected, with the reason, until the timeout', async () => {
        await h.enable('vm1c');
        await h.runtime.runUntilIdle();
        await h.runtime.raiseEvent('protect:vm1c', lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1c',
            disks: { os: 100, data: 100 },
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        await h.runtime.raiseEvent('protect:vm1c', lifecycleEvents.resyncRequired, {
            vmId: 'vm1c',
            diskId: 'data',
            reason: 'InvalidLog',
            detail: 'Log metadata consistency="fuzzy" is not CrashConsistent or AppConsistent.',
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        const blocked = await getProtectedItem(h.scope, 'vm1c');
        expect(blocked).toMatchObject({
            protectionState: 'InitialReplicationInProgress',
            replicationHealth: 'Critical',
            healthReasons: [
                {
                    code: 'ResyncRequired',
                    severity: 'Critical',
                    message: expect.stringMatching(
                        /disk data cannot complete \(InvalidLog\): Log metadata consistency/,
                    ),
                },
            ],
        });
        await h.runtime.advanceUntil(
            async () => (await h.runtime.getStatus('protect:vm1c'))?.runtimeStatus === 'Completed',
            { maxMs: 80 * 3600_000 },
        );
        expect(await getProtectedItem(h.scope, 'vm1c')).toMatchObject({
            protectionState: 'InitialReplicationFailed',
            healthReasons: [expect.objectContaining({ errorCode: 'TIMEOUT' })],
        });
        expect(await h.runtime.getStatus(instanceIds.replicationMonitor('vm1c'))).toBeUndefined();
    });

    it('retries a recoverable failure at exactly 1, 2, 4, 8, 10, 30 and 30 minutes', async () => {
        h.publishFailures = Array.from({ length: 7 }, () => new HvrError('TRANSIENT', 'Service Bus is busy'));
        const { jobId } = (await h.enable('vm2')).jsonBody;
        await h.runtime.advanceUntil(() => h.published.length === 8, { maxMs: 3 * 3600_000 });
        await h.runtime.runUntilIdle();
        const times = h.published.map((p) => p.at.getTime());
        const gaps = times.slice(1).map((t, i) => (t - times[i]!) / MINUTE);
        expect(gaps).toEqual([1, 2, 4, 8, 10, 30, 30]);
        expect(times[0]).toBe(START.getTime());
        const job = await getJob(h.scope, jobId);
        expect(job?.state).toBe('Succeeded');
        expect((await getProtectedItem(h.scope, 'vm2'))?.protectionState).toBe('InitialReplicationInProgress');
    });

    it('treats a thrown (transient) activity error as recoverable and retries it on the same schedule', async () => {
        h.createReplicaFailures = [new Error('socket hang up'), new Error('socket hang up')];
        await h.enable('vm3');
        await h.runtime.advanceUntil(() => h.published.length === 1, { maxMs: 3600_000 });
        const creates = h.replicaCalls.filter((c) => c.input.op === 'createReplicaDisk' && c.input.diskId === 'os');
        expect(creates.map((c) => (c.at.getTime() - START.getTime()) / MINUTE)).toEqual([0, 1, 3]);
    });

    it('stops at a non-recoverable error: no retry, health Critical with the reason, job Failed', async () => {
        h.createReplicaFailures = [new HvrError('REPLICA_STATE_INVALID', 'replica vm4/os.vhd has the wrong size')];
        const { jobId } = (await h.enable('vm4')).jsonBody;
        await h.runtime.runUntilIdle();
        await h.runtime.advance(3 * 3600_000);
        expect(h.replicaCalls.filter((c) => c.input.op === 'createReplicaDisk')).toHaveLength(1);
        expect(h.published).toHaveLength(0);
        const job = await getJob(h.scope, jobId);
        expect(job?.state).toBe('Failed');
        expect(job?.tasks.find((t) => t.name === 'Enable replication')?.state).toBe('Failed');
        expect(job?.errors[0]).toMatchObject({
            code: 'REPLICA_STATE_INVALID',
            recoverable: false,
            task: 'Enable replication',
        });
        const item = await getProtectedItem(h.scope, 'vm4');
        expect(item).toMatchObject({ protectionState: 'EnablingFailed', replicationHealth: 'Critical' });
        expect(item?.healthReasons[0]).toMatchObject({
            code: 'NonRecoverableError',
            errorCode: 'REPLICA_STATE_INVALID',
            message: expect.stringContaining('wrong size'),
        });
        expect((await h.runtime.getStatus('protect:vm4'))?.output).toMatchObject({ result: 'Failed' });
        // The "Job failed" alert reads this telemetry.
        expect(h.metrics.filter((m) => m.name === 'JobFailed')).toEqual([
            expect.objectContaining({
                value: 1,
                dimensions: { jobId, jobType: 'EnableProtection', vmId: 'vm4', errorCode: 'REPLICA_STATE_INVALID' },
            }),
        ]);
    });

    it('fails the prerequisites check for a VM outside the support matrix, naming the rule', async () => {
        const vm = {
            vmId: 'vm5',
            name: 'big',
            generation: 2 as const,
            disks: [{ diskId: 'os', sizeBytes: 400 * 1024 ** 3, logicalSectorBytes: 512, isOsDisk: true }],
        };
        const { jobId } = (await h.enable('vm5', vm)).jsonBody;
        await h.runtime.runUntilIdle();
        const job = await getJob(h.scope, jobId);
        expect(job?.tasks[0]).toMatchObject({ name: 'Prerequisites check', state: 'Failed' });
        expect(job?.errors[0]?.message).toMatch(/300 GiB/);
        expect(h.replicaCalls).toHaveLength(0);
    });

    it('does not start a second instance for a repeated enable-protection command', async () => {
        const first = await h.enable('vm6');
        const second = await h.enable('vm6');
        expect(second.status).toBe(202);
        expect(second.jsonBody).toMatchObject({ jobId: first.jsonBody.jobId, alreadyRunning: true });
        await h.runtime.runUntilIdle();
        const third = await h.enable('vm6');
        expect(third.jsonBody.jobId).toBe(first.jsonBody.jobId);
        expect(await h.runtime.listInstances({ prefix: 'protect:' })).toHaveLength(1);
        expect(h.published.filter((p) => p.input.type === 'StartReplication')).toHaveLength(1);
    });

    it("waits for the policy's scheduled initial replication start with a durable timer", async () => {
        await h.seedSiteAndPolicy({ initialReplicationStart: '2025-03-03T22:00:00Z' });
        await h.enable('vm7');
        await h.runtime.runUntilIdle();
        expect(h.published).toHaveLength(0);
        expect(((await h.runtime.getStatus('protect:vm7'))?.customStatus as EnableProtectionStatus).stage).toBe(
            'WaitingForScheduledStart',
        );
        await h.runtime.advanceUntil(() => h.published.length === 1, { maxMs: 24 * 3600_000 });
        expect(h.published[0]?.at.toISOString()).toBe('2025-03-03T22:00:00.000Z');
    });

    it('fails initial replication on a non-recoverable provider error, and on its timeout', async () => {
        await h.enable('vm8');
        await h.runtime.runUntilIdle();
        await h.runtime.raiseEvent('protect:vm8', lifecycleEvents.providerError, {
            vmId: 'vm8',
            code: 'VM_NOT_FOUND',
            message: 'vm8 no longer exists on host hv01',
            recoverable: false,
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        expect(await getProtectedItem(h.scope, 'vm8')).toMatchObject({
            protectionState: 'InitialReplicationFailed',
            replicationHealth: 'Critical',
            healthReasons: [expect.objectContaining({ errorCode: 'VM_NOT_FOUND' })],
        });

        await h.enable('vm9');
        await h.runtime.advanceUntil(
            async () => (await h.runtime.getStatus('protect:vm9'))?.runtimeStatus === 'Completed',
            {
                maxMs: 80 * 3600_000,
            },
        );
        expect(h.clock.now().getTime() - START.getTime()).toBe(72 * 3600_000);
        expect((await getProtectedItem(h.scope, 'vm9'))?.healthReasons[0]?.errorCode).toBe('TIMEOUT');
    });
});
