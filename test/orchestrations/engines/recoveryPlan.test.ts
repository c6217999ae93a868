/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are read loosely in tests */
import { HttpRequest, HttpResponseInit } from '@azure/functions';
import '../../../functions/apiFailover';
import '../../../functions/apiRecoveryPlans';
import { DURABLE_TIME_SCALE_SETTING } from '../../../shared/durableTime';
import { DryRunFailoverInfrastructure } from '../../../shared/failover/dryRunInfrastructure';
import { VirtualMachineSpec } from '../../../shared/failover/infrastructure';
import { setFailoverInfrastructure } from '../../../shared/failover/settings';
import { HvrError } from '../../../shared/errors';
import { instanceIds } from '../../../shared/lifecycle/instances';
import { getJob, Job } from '../../../shared/state/jobs';
import { getProtectedItem } from '../../../shared/state/protectedItems';
import { durableClientBindings, functionRegistry, invokeFunction } from '../../../packages/functions-local/src';
import { describeOnEngines, isFinished, type EngineUnderTest } from '../../support/durableEngines';
import { mapCorp, seedFailoverVm } from '../lifecycle/failoverSeed';
import { LifecycleHarness } from '../lifecycle/harness';

// The real engine has no virtual clock: the drills' 30 s copy polls and the retry delays run a thousand times faster.
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

class FlakyInfrastructure extends DryRunFailoverInfrastructure {
    failing = new Set<string>();
    override async createVirtualMachine(spec: VirtualMachineSpec) {
        if ([...this.failing].some((vm) => spec.name.startsWith(`vm-${vm}-`))) {
            throw new HvrError('FORBIDDEN', `The identity may not create ${spec.name} (injected).`);
        }
        return super.createVirtualMachine(spec);
    }
}

/** VM ids of their own per test and engine: the replicas container is shared by every test of the run. */
const groupsOf = (prefix: string) => [
    [`${prefix}-db1`, `${prefix}-db2`],
    [`${prefix}-app1`, `${prefix}-app2`],
];

/**
 * A plan on both engines: fan-out of sub-orchestrations (the VMs of a group, each a sub-orchestration that runs
 * the per-VM one as its own sub-orchestration), the manual step's external event, and a retry after a failure.
 */
describeOnEngines('recovery plan', (engine) => {
    let h: LifecycleHarness;
    let infra: FlakyInfrastructure;
    let restoreInfra: () => void;

    let seeded = 0;
    let GROUPS: string[][];
    beforeEach(async () => {
        // The harness gives the tables, ports and fakes; the engine under test runs the orchestrations.
        h = new LifecycleHarness();
        infra = new FlakyInfrastructure();
        restoreInfra = setFailoverInfrastructure(infra);
        GROUPS = groupsOf(`${engine().name}${++seeded}`);
        for (const vmId of GROUPS.flat()) {
            await seedFailoverVm(h, vmId, [['c1', 0x11]]);
        }
        await mapCorp(h);
    });
    afterEach(async () => {
        restoreInfra();
        await h.close();
    });

    async function api(
        e: EngineUnderTest,
        functionName: string,
        init: { method: string; path: string; params: Record<string, string>; body?: unknown },
    ): Promise<HttpResponseInit & { jsonBody?: any }> {
        const request = new HttpRequest({
            method: init.method,
            url: `http://localhost:7071/api/${init.path}`,
            params: init.params,
            ...(init.body !== undefined ? { body: { string: JSON.stringify(init.body) } } : {}),
        });
        const { result } = await invokeFunction(functionRegistry().get(functionName), request, {
            bindings: [durableClientBindings(e)],
        });
        return result as HttpResponseInit;
    }

    const act = (e: EngineUnderTest, name: string, action: string) =>
        api(e, 'apiRecoveryPlanAction', {
            method: 'POST',
            path: `recoveryPlans/${name}/${action}`,
            params: { name, action },
        });

    async function job(jobId: string): Promise<Job> {
        const j = await getJob(h.scope, jobId);
        if (!j) throw new Error(`no job ${jobId}`);
        return j;
    }
    const task = (j: Job, name: string) => j.tasks.find((t) => t.name === name)!;

    it('runs the groups in order, the VMs of a group together, held by the manual step until resumed', async () => {
        const e = engine();
        const name = `tiers-${e.name}`;
        const instanceId = instanceIds.recoveryPlan(name);
        const created = await api(e, 'apiRecoveryPlan', {
            method: 'PUT',
            path: `recoveryPlans/${name}`,
            params: { name },
            body: {
                groups: [{ vms: GROUPS[0] }, { vms: GROUPS[1], preActions: [{ name: 'Approve', kind: 'Manual' }] }],
            },
        });
        expect(created.status).toBe(201);

        const started = await act(e, name, 'testFailover');
        expect(started.status).toBe(202);
        const waiting = await e.waitFor(
            instanceId,
            (s) => isFinished(s) || (s.customStatus as any)?.waitingFor !== undefined,
            120_000,
        );
        if (!(waiting.customStatus as any)?.waitingFor) {
            throw new Error(`the plan ended without waiting: ${JSON.stringify(await job(started.jsonBody.jobId))}`);
        }
        expect((waiting.customStatus as any).waitingFor).toMatchObject({ action: 'Approve' });
        let j = await job(started.jsonBody.jobId);
        expect(task(j, 'Group 1').state).toBe('Succeeded');
        expect(task(j, `Group 2: VM ${GROUPS[1]![0]}`).state).toBe('NotStarted');
        expect((await getProtectedItem(h.scope, GROUPS[1]![0]!))!.testFailoverState ?? 'None').toBe('None');

        expect((await act(e, name, 'resume')).status).toBe(202);
        const done = await e.waitFor(instanceId, isFinished, 120_000);
        expect(done).toMatchObject({ runtimeStatus: 'Completed', output: { result: 'Succeeded' } });
        j = await job(started.jsonBody.jobId);
        expect(j.state).toBe('Succeeded');
        expect(Date.parse(task(j, `Group 2: VM ${GROUPS[1]![0]}`).startTime!)).toBeGreaterThanOrEqual(
            Date.parse(task(j, 'Group 1').endTime!),
        );
        for (const vm of GROUPS.flat()) {
            expect((await getProtectedItem(h.scope, vm))!.testFailoverState).toBe('TestFailoverCleanupPending');
        }
    });

    it('a failing VM fails the job after its group; the retry continues from it', async () => {
        const e = engine();
        const name = `retry-${e.name}`;
        const instanceId = instanceIds.recoveryPlan(name);
        await api(e, 'apiRecoveryPlan', {
            method: 'PUT',
            path: `recoveryPlans/${name}`,
            params: { name },
            body: { groups: [{ vms: GROUPS[0] }, { vms: GROUPS[1] }] },
        });
        const [db1, db2] = GROUPS[0]!;
        infra.failing.add(db2!);
        const first = await act(e, name, 'testFailover');
        expect(await e.waitFor(instanceId, isFinished, 120_000)).toMatchObject({
            runtimeStatus: 'Completed',
            output: { result: 'Failed', failedVms: [db2] },
        });
        const failed = await job(first.jsonBody.jobId);
        expect(failed.state).toBe('Failed');
        expect(failed.errors[0]).toMatchObject({ task: `Group 1: VM ${db2}`, code: 'FORBIDDEN' });
        expect(task(failed, `Group 1: VM ${db1}`).state).toBe('Succeeded');
        expect(task(failed, 'Group 2').state).toBe('NotStarted');

        infra.failing.clear();
        const retry = await act(e, name, 'testFailover');
        expect(retry.jsonBody).toMatchObject({ resumedFromJobId: first.jsonBody.jobId, completedSteps: 1 });
        expect(await e.waitFor(instanceId, isFinished, 120_000)).toMatchObject({
            runtimeStatus: 'Completed',
            output: { result: 'Succeeded' },
        });
        for (const vm of GROUPS.flat()) {
            expect((await getProtectedItem(h.scope, vm))!.testFailoverState).toBe('TestFailoverCleanupPending');
        }
    });
});
