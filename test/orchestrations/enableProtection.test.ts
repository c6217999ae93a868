import '../../functions/apiReplicationProtectedItems';
import { HvrError } from '../../shared/errors';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import * as enableProtectionModule from '../../orchestrations/enableProtection';
import { EnableProtectionStatus } from '../../orchestrations/enableProtection';
import { DURABLE_TIME_SCALE_SETTING, scaledMs } from '../../shared/durableTime';
import { validateEvent } from '../../shared/contracts/validate';
import { describeOnEngines, isFinished, itOn, type EngineStatus } from '../support/durableEngines';
import { EngineHarness } from './lifecycle/engineHarness';

const MINUTE = 60_000;

// The schedule in scaled time on both engines: a one-minute retry takes 6 ms, the 72 h initial-replication
// timeout 26 s. The embedded runtime reaches each instant exactly; the real engine no earlier.
process.env[DURABLE_TIME_SCALE_SETTING] = '0.0001';

const stage = (s: EngineStatus | undefined) => (s?.customStatus as EnableProtectionStatus | undefined)?.stage;

/**
 * On both engines, times relative to the engine's clock. Durations are asserted as the scaled schedule: exactly
 * on the embedded runtime's virtual clock, at least that long on the real engine.
 */
describeOnEngines('enable protection', (engine, engineName) => {
    let h: EngineHarness;
    beforeEach(async () => {
        h = new EngineHarness(engine());
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    /** A duration the orchestration measured: exact on the virtual clock, no shorter on the real engine. */
    const expectDuration = (actualMs: number, productMs: number) => {
        if (engineName === 'embedded') expect(actualMs).toBe(scaledMs(productMs));
        else expect(actualMs).toBeGreaterThanOrEqual(scaledMs(productMs));
    };
    const jobState = (jobId: string) => async () => (await getJob(h.scope, jobId))?.state;
    const protectionState = (vmId: string) => async () => (await getProtectedItem(h.scope, vmId))?.protectionState;

    it('runs enable → initial replication progress → finalize → monitor Protected, end to end', async () => {
        const response = await h.enable('vm1');
        expect(response.status).toBe(202);
        const { jobId, instanceId } = response.jsonBody;
        expect(instanceId).toBe('protect:vm1');
        expect((response.headers as Record<string, string>).Location).toBe(
            `http://localhost:7071/api/replicationJobs/${jobId}`,
        );
        await h.until(jobState(jobId), 'Succeeded');
        const job = await getJob(h.scope, jobId);
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

        await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1',
            disks: { os: 40, data: 12.5 },
            at: h.now().toISOString(),
        });
        await h.until(async () => (await getProtectedItem(h.scope, 'vm1'))?.initialReplicationProgress, {
            os: 40,
            data: 12.5,
        });
        const status = (await engine().status(instanceId))!;
        expect(status.runtimeStatus).toBe('Running');
        expect((status.customStatus as EnableProtectionStatus).initialReplication?.disks).toEqual({
            os: 40,
            data: 12.5,
        });

        await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1',
            disks: { os: 100, data: 100 },
            at: h.now().toISOString(),
        });
        await h.until(async () => (await getProtectedItem(h.scope, 'vm1'))?.initialReplicationProgress, {
            os: 100,
            data: 100,
        });
        // The provider's word is not enough: nothing is merged yet, so there is nothing to recover to.
        expect((await engine().status(instanceId))?.runtimeStatus).toBe('Running');
        expect((await getProtectedItem(h.scope, 'vm1'))?.protectionState).toBe('InitialReplicationInProgress');

        // The merge applied both disks' last initial logs and recorded the `initial` recovery point.
        const capturedAt = new Date(h.now().getTime() - 4 * MINUTE);
        await engine().raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId: 'vm1',
            cycleId: 'initial',
            recoveryPointId: 'vm1:initial',
            consistency: 'CrashConsistent',
            capturedAt: capturedAt.toISOString(),
        });
        const done = await engine().waitFor(instanceId, isFinished);
        expect(done.runtimeStatus).toBe('Completed');
        expect(done.output).toMatchObject({ result: 'Protected', jobId });
        const finalize = await getJob(h.scope, (done.output as { finalizeJobId: string }).finalizeJobId);
        expect(finalize).toMatchObject({ kind: 'FinalizeProtection', state: 'Succeeded' });
        const monitorId = instanceIds.replicationMonitor('vm1');
        const monitor = await engine().waitFor(
            monitorId,
            (s) => s.customStatus !== null && s.customStatus !== undefined,
        );
        expect(monitor.runtimeStatus).toBe('Running');
        await h.until(
            async () => {
                const item = (await getProtectedItem(h.scope, 'vm1'))!;
                return {
                    protectionState: item.protectionState,
                    replicationHealth: item.replicationHealth,
                    healthReasons: item.healthReasons,
                    lastRecoveryPointId: item.lastRecoveryPointId,
                    // The instant: the real engine writes it in a shorter ISO form (docs/durable-runtime.md).
                    lastCapturedAt: item.lastCapturedAt && new Date(item.lastCapturedAt).toISOString(),
                };
            },
            {
                protectionState: 'Protected',
                replicationHealth: 'Normal',
                healthReasons: [],
                lastRecoveryPointId: 'vm1:initial',
                lastCapturedAt: capturedAt.toISOString(),
            },
        );
        // RPO counts from the initial point's capture (4 min before), not from when monitoring began.
        const rpo = h.metrics.filter((m) => m.name === 'ReplicationRpoSeconds' && m.dimensions.vmId === 'vm1');
        expect(rpo[0]?.value).toBeGreaterThanOrEqual(4 * 60);
        expect(rpo[0]?.value).toBeLessThan(5 * 60);
        await engine().terminate(monitorId, 'test over');
    });

    it("waits for initial replication on one timer whatever its event rounds: it is the deadline instance's, ended with the wait", async () => {
        const { jobId } = (await h.enable('vm1t')).jsonBody;
        const instanceId = instanceIds.enableProtection('vm1t');
        const deadlineId = instanceIds.initialReplicationDeadline('vm1t', jobId);
        await engine().waitFor(instanceId, (s) => stage(s) === 'InitialReplicationInProgress');
        // Four rounds: each progress report is handled before the next is raised.
        for (const percent of [10, 20, 30, 40]) {
            await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
                vmId: 'vm1t',
                disks: { os: percent, data: percent },
                at: h.now().toISOString(),
            });
            await h.until(async () => (await getProtectedItem(h.scope, 'vm1t'))?.initialReplicationProgress, {
                os: percent,
                data: percent,
            });
        }
        expect((await engine().status(deadlineId))?.runtimeStatus).toBe('Running');
        await engine().raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId: 'vm1t',
            cycleId: 'initial',
            recoveryPointId: 'vm1t:initial',
            consistency: 'CrashConsistent',
            capturedAt: h.now().toISOString(),
        });
        expect((await engine().waitFor(instanceId, isFinished)).output).toMatchObject({ result: 'Protected' });
        const timers = async (id: string) =>
            (await engine().historyEventTypes(id)).filter((t) => t === 'TimerCreated').length;
        expect(await timers(instanceId)).toBe(0);
        expect(await timers(deadlineId)).toBe(1);
        // The wait is over, so is its deadline: terminated, its timer never raises.
        expect((await engine().waitFor(deadlineId, isFinished)).runtimeStatus).toBe('Terminated');
        await engine().terminate(instanceIds.replicationMonitor('vm1t'), 'test over');
    });

    it('keeps an instance started before the deadline instance (input version 1) on its timer per round, to its timeout', async () => {
        // What the previous version of the API started: no `version` in the input (docs/lifecycle.md, versioning).
        jest.replaceProperty(enableProtectionModule, 'ENABLE_PROTECTION_INPUT_VERSION', undefined as unknown as 2);
        const { jobId } = (await h.enable('vm1v')).jsonBody;
        jest.restoreAllMocks();
        const instanceId = instanceIds.enableProtection('vm1v');
        const waiting = await engine().waitFor(instanceId, (s) => stage(s) === 'InitialReplicationInProgress');
        expect((waiting.input as { version?: number }).version).toBeUndefined();
        await engine().raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1v',
            disks: { os: 50, data: 50 },
            at: h.now().toISOString(),
        });
        const done = await engine().waitFor(
            instanceId,
            isFinished,
            engineName === 'embedded' ? 80 * 3600_000 : 120_000,
        );
        expect(done.output).toMatchObject({ result: 'Failed', error: { code: 'TIMEOUT' } });
        expect((await engine().historyEventTypes(instanceId)).filter((t) => t === 'TimerCreated').length).toBe(2);
        expect(await engine().status(instanceIds.initialReplicationDeadline('vm1v', jobId))).toBeUndefined();
    });

    it("does not complete on a delta cycle's recovery point, only on the initial one", async () => {
        await h.enable('vm1b');
        await engine().waitFor('protect:vm1b', (s) => stage(s) === 'InitialReplicationInProgress');
        await engine().raiseEvent('protect:vm1b', lifecycleEvents.cycleComplete, {
            vmId: 'vm1b',
            cycleId: 'cycle-1',
            recoveryPointId: 'vm1b:cycle-1',
            consistency: 'CrashConsistent',
            capturedAt: h.now().toISOString(),
        });
        await engine().progress();
        expect((await getProtectedItem(h.scope, 'vm1b'))?.protectionState).toBe('InitialReplicationInProgress');
        await h.completeInitialReplication('vm1b');
        await h.until(protectionState('vm1b'), 'Protected');
        // Both CycleComplete were handled in order: the delta one did not complete it.
        expect((await engine().waitFor('protect:vm1b', isFinished)).output).toMatchObject({ result: 'Protected' });
        await engine().terminate(instanceIds.replicationMonitor('vm1b'), 'test over');
    });

    it('keeps a VM whose initial log was quarantined out of Protected, with the reason, until the timeout', async () => {
        await h.enable('vm1c');
        const waiting = await engine().waitFor('protect:vm1c', (s) => stage(s) === 'InitialReplicationInProgress');
        const ir = (waiting.customStatus as EnableProtectionStatus).initialReplication!;
        expect(Date.parse(ir.timeoutAt) - Date.parse(ir.startedAt)).toBe(scaledMs(72 * 3600_000));
        await engine().raiseEvent('protect:vm1c', lifecycleEvents.initialReplicationProgress, {
            vmId: 'vm1c',
            disks: { os: 100, data: 100 },
            at: h.now().toISOString(),
        });
        await engine().raiseEvent('protect:vm1c', lifecycleEvents.resyncRequired, {
            vmId: 'vm1c',
            diskId: 'data',
            reason: 'InvalidLog',
            detail: 'Log metadata consistency="fuzzy" is not CrashConsistent or AppConsistent.',
            at: h.now().toISOString(),
        });
        await h.until(async () => (await getProtectedItem(h.scope, 'vm1c'))?.replicationHealth, 'Critical');
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
        const done = await engine().waitFor(
            'protect:vm1c',
            isFinished,
            engineName === 'embedded' ? 80 * 3600_000 : 120_000,
        );
        expect(done.output).toMatchObject({ result: 'Failed' });
        // The real engine's timers can fire up to a second early (queue visibility delays are whole seconds): in
        // CI one fired 413 ms before its fireAt. docs/durable-runtime.md lists it.
        const earlyMs = engineName === 'embedded' ? 0 : 1000;
        expect(h.now().getTime()).toBeGreaterThanOrEqual(Date.parse(ir.timeoutAt) - earlyMs);
        expect(await getProtectedItem(h.scope, 'vm1c')).toMatchObject({
            protectionState: 'InitialReplicationFailed',
            healthReasons: [expect.objectContaining({ errorCode: 'TIMEOUT' })],
        });
        expect(await engine().status(instanceIds.replicationMonitor('vm1c'))).toBeUndefined();
    });

    // Embedded only (docs/durable-runtime.md): the whole schedule against its scaled 24 h give-up limit.
    itOn(
        'embedded',
        engineName,
        'retries a recoverable failure after 1, 2, 4, 8, 10, 30 and 30 minutes (scaled)',
        async () => {
            h.publishFailures = Array.from({ length: 7 }, () => new HvrError('TRANSIENT', 'Service Bus is busy'));
            const { jobId } = (await h.enable('vm2')).jsonBody;
            await h.eventually(jobState(jobId), 'Succeeded');
            expect(h.published).toHaveLength(8);
            const times = h.published.map((p) => p.at.getTime());
            [1, 2, 4, 8, 10, 30, 30].forEach((minutes, i) =>
                expectDuration(times[i + 1]! - times[i]!, minutes * MINUTE),
            );
            expect((await getProtectedItem(h.scope, 'vm2'))?.protectionState).toBe('InitialReplicationInProgress');
        },
    );

    it('treats a thrown (transient) activity error as recoverable and retries it on the same schedule', async () => {
        h.createReplicaFailures = [new Error('socket hang up'), new Error('socket hang up')];
        const { jobId } = (await h.enable('vm3')).jsonBody;
        await h.eventually(jobState(jobId), 'Succeeded');
        expect(h.published).toHaveLength(1);
        const creates = h.replicaCalls.filter((c) => c.input.op === 'createReplicaDisk' && c.input.diskId === 'os');
        expect(creates).toHaveLength(3);
        expectDuration(creates[1]!.at.getTime() - creates[0]!.at.getTime(), MINUTE);
        expectDuration(creates[2]!.at.getTime() - creates[1]!.at.getTime(), 2 * MINUTE);
    });

    it('stops at a non-recoverable error: no retry, health Critical with the reason, job Failed', async () => {
        h.createReplicaFailures = [new HvrError('REPLICA_STATE_INVALID', 'replica vm4/os.vhd has the wrong size')];
        const { jobId } = (await h.enable('vm4')).jsonBody;
        await engine().waitFor('protect:vm4', isFinished);
        await h.until(jobState(jobId), 'Failed');
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
        expect((await engine().status('protect:vm4'))?.output).toMatchObject({ result: 'Failed' });
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
        await h.until(jobState(jobId), 'Failed');
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
        await engine().waitFor('protect:vm6', (s) => stage(s) === 'InitialReplicationInProgress');
        const third = await h.enable('vm6');
        expect(third.jsonBody.jobId).toBe(first.jsonBody.jobId);
        expect(h.published.filter((p) => p.input.type === 'StartReplication')).toHaveLength(1);
        await engine().terminate('protect:vm6', 'test over');
    });

    // Embedded only (docs/durable-runtime.md): an absolute start instant.
    itOn(
        'embedded',
        engineName,
        "waits for the policy's scheduled initial replication start with a durable timer",
        async () => {
            // A start ahead of the virtual clock (absolute instants are not scaled).
            const startAt = new Date(Math.ceil((h.now().getTime() + 15_000) / 1000) * 1000);
            await h.seedSiteAndPolicy({ initialReplicationStart: startAt.toISOString() });
            await h.enable('vm7');
            await engine().waitFor('protect:vm7', (s) => stage(s) === 'WaitingForScheduledStart');
            const published = () => h.published.filter((p) => p.input.vmId === 'vm7');
            expect(published()).toHaveLength(0);
            await engine().waitFor('protect:vm7', (s) => stage(s) !== 'WaitingForScheduledStart');
            expect(published()).toHaveLength(1);
            expect(published()[0]!.at).toEqual(startAt);
            await engine().terminate('protect:vm7', 'test over');
        },
    );

    it('fails initial replication on a non-recoverable provider error', async () => {
        await h.enable('vm8');
        await engine().waitFor('protect:vm8', (s) => stage(s) === 'InitialReplicationInProgress');
        await engine().raiseEvent('protect:vm8', lifecycleEvents.providerError, {
            vmId: 'vm8',
            code: 'VM_NOT_FOUND',
            message: 'vm8 no longer exists on host hv01',
            recoverable: false,
            at: h.now().toISOString(),
        });
        await engine().waitFor('protect:vm8', isFinished);
        expect(await getProtectedItem(h.scope, 'vm8')).toMatchObject({
            protectionState: 'InitialReplicationFailed',
            replicationHealth: 'Critical',
            healthReasons: [expect.objectContaining({ errorCode: 'VM_NOT_FOUND' })],
        });
    });
});
