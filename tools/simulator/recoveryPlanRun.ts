import { HvrError } from '../../shared/errors';
import { StepIncomplete } from '../../packages/provider-kit/src';
import {
    checkFailoverDisks,
    drillOf,
    DrillContext,
    DrillTarget,
    FailoverDiskComparison,
    remainingFailoverBlobs,
    waitForJob,
} from './testFailoverDrill';

/**
 * `hvr simulate --recovery-plan`: the simulated VMs in a recovery plan of up to three ordered groups, the second
 * group (the first, with one group) held by a manual pre-action, run as an operator would through the API: test
 * failover of the plan, the hold checked (earlier groups done, the held group's VMs not started) and resumed by
 * the simulator, group order checked in the job's tasks, every failover disk compared with its source, then the
 * plan's cleanup, checked on every drill and in the `failover` container.
 */

export const SIMULATED_PLAN = 'simulated-plan';
export const SIMULATED_MANUAL_ACTION = 'Simulator check';

export interface RecoveryPlanContext extends DrillContext {
    apiUrl: string;
    functionKey: string;
}

export interface RecoveryPlanReport {
    planName: string;
    groups: string[][];
    testFailoverJobId: string;
    cleanupJobId: string;
    /** The task the manual action showed while it held the plan. */
    heldAt: string;
    /** Problems with the order of the job's tasks; empty when every group ran after the one before. */
    orderProblems: string[];
    disks: FailoverDiskComparison[];
}

interface TaskTimes {
    name: string;
    state: string;
    startTime?: string;
    endTime?: string;
}

const POLL_MS = 250;
const CALL_TIMEOUT_MS = 30_000;

async function call<T>(ctx: RecoveryPlanContext, method: string, path: string, body?: unknown): Promise<T> {
    const url = `${ctx.apiUrl.replace(/\/+$/, '')}/${path}`;
    const response = await fetch(url, {
        method,
        headers: {
            'x-functions-key': ctx.functionKey,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    const text = await response.text();
    if (!response.ok) {
        throw new HvrError('CONFLICT', `${method} /${path} answered ${response.status}: ${text.slice(0, 500)}`);
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
}

/** Up to three groups, in VM order: the application's tiers. */
export function planGroups(vmIds: readonly string[]): string[][] {
    const count = Math.min(3, vmIds.length);
    const groups: string[][] = Array.from({ length: count }, () => []);
    vmIds.forEach((vmId, i) => groups[Math.floor((i * count) / vmIds.length)]!.push(vmId));
    return groups;
}

/** Every group starts after the one before has ended, and each VM runs inside its group (from the tasks' times). */
export function groupOrderProblems(tasks: readonly TaskTimes[], groups: readonly string[][]): string[] {
    const problems: string[] = [];
    const at = (t: string | undefined): number => (t === undefined ? NaN : Date.parse(t));
    const find = (name: string): TaskTimes | undefined => tasks.find((t) => t.name === name);
    let previousEnd = -Infinity;
    let previousIndex = -1;
    groups.forEach((vms, i) => {
        const name = `Group ${i + 1}`;
        const group = find(name);
        if (!group || group.state !== 'Succeeded') {
            problems.push(`${name} is ${group?.state ?? 'missing'}`);
            return;
        }
        const index = tasks.indexOf(group);
        if (index < previousIndex) problems.push(`${name} is listed before the group it follows`);
        previousIndex = index;
        if (!(at(group.startTime) >= previousEnd)) {
            problems.push(`${name} started at ${group.startTime} before the previous group ended`);
        }
        for (const vmId of vms) {
            const vm = find(`${name}: VM ${vmId}`);
            if (!vm || vm.state !== 'Succeeded') {
                problems.push(`${name}: VM ${vmId} is ${vm?.state ?? 'missing'}`);
            } else if (!(at(vm.startTime) >= at(group.startTime) && at(vm.endTime) <= at(group.endTime))) {
                problems.push(`${name}: VM ${vmId} ran (${vm.startTime}–${vm.endTime}) outside its group`);
            }
        }
        previousEnd = at(group.endTime);
    });
    return problems;
}

export async function runRecoveryPlan(
    ctx: RecoveryPlanContext,
    targets: readonly DrillTarget[],
): Promise<RecoveryPlanReport> {
    const groups = planGroups(targets.map((t) => t.vmId));
    const held = groups.length > 1 ? 1 : 0;
    const step = 'recovery plan test failover';
    await call(ctx, 'PUT', `recoveryPlans/${SIMULATED_PLAN}`, {
        description: 'hvr simulate --recovery-plan',
        recoveryPoint: 'Latest',
        groups: groups.map((vms, i) => ({
            vms,
            ...(i === held
                ? {
                      preActions: [
                          { name: SIMULATED_MANUAL_ACTION, kind: 'Manual', instructions: 'The simulator resumes it.' },
                      ],
                  }
                : {}),
        })),
    });
    ctx.say(`recovery plan ${SIMULATED_PLAN}: ${groups.map((g, i) => `group ${i + 1} [${g.join(', ')}]`).join(', ')}`);
    const started = await call<{ jobId: string }>(ctx, 'POST', `recoveryPlans/${SIMULATED_PLAN}/testFailover`);
    const jobId = started.jobId;

    // The manual action holds the plan: earlier groups done, the held group's VMs not started.
    const until = Date.now() + ctx.stepTimeoutMs;
    let waitingFor: { action: string; task: string } | undefined;
    while (!waitingFor) {
        const plan = await call<{ properties: { waitingFor?: { action: string; task: string } } }>(
            ctx,
            'GET',
            `recoveryPlans/${SIMULATED_PLAN}`,
        );
        waitingFor = plan.properties.waitingFor;
        if (waitingFor) break;
        const job = await call<{ state: string }>(ctx, 'GET', `replicationJobs/${jobId}`);
        if (job.state !== 'InProgress' && job.state !== 'NotStarted') {
            throw new StepIncomplete(step, `the plan's job ended ${job.state} before its manual action held it`);
        }
        if (Date.now() > until)
            throw new StepIncomplete(step, `no manual action held the plan after ${ctx.stepTimeoutMs / 1000} s`);
        await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const holding = await call<{ tasks: TaskTimes[] }>(ctx, 'GET', `replicationJobs/${jobId}`);
    for (const [i, vms] of groups.entries()) {
        for (const vmId of vms) {
            const t = holding.tasks.find((x) => x.name === `Group ${i + 1}: VM ${vmId}`);
            const expected = i < held ? 'Succeeded' : 'NotStarted';
            if (t?.state !== expected) {
                throw new StepIncomplete(
                    step,
                    `while held at "${waitingFor.task}", VM ${vmId} is ${t?.state}, not ${expected}`,
                );
            }
        }
    }
    ctx.say(`recovery plan held at "${waitingFor.task}"; resuming it`);
    await call(ctx, 'POST', `recoveryPlans/${SIMULATED_PLAN}/resume`, {
        action: waitingFor.action,
        by: 'hvr simulate',
    });
    await waitForJob(ctx, jobId, step);
    const job = await call<{ tasks: TaskTimes[] }>(ctx, 'GET', `replicationJobs/${jobId}`);
    const orderProblems = groupOrderProblems(job.tasks, groups);
    for (const p of orderProblems) ctx.say(`recovery plan order: ${p}`);
    if (orderProblems.length === 0)
        ctx.say(`recovery plan test failover succeeded; the ${groups.length} groups ran in order`);

    const drills = new Map<string, string>();
    const disks: FailoverDiskComparison[] = [];
    for (const target of targets) {
        const item = await call<{ properties: { currentDrillId?: string } }>(
            ctx,
            'GET',
            `replicationProtectedItems/${target.vmId}`,
        );
        const drillId = item.properties.currentDrillId;
        if (!drillId) throw new StepIncomplete(step, `VM ${target.vmId} names no drill after the plan's test failover`);
        drills.set(target.vmId, drillId);
        const compared = await checkFailoverDisks(ctx, target, await drillOf(ctx, target.vmId, drillId, step));
        for (const d of compared) {
            ctx.say(
                `${d.vmId}/${d.diskId}: ${d.equal ? 'failover disk equals source' : `failover disk DIFFERS: ${d.problem}`}; qemu-img: ${d.qemuImg ?? 'not run'}`,
            );
        }
        disks.push(...compared);
    }

    const cleanupStep = 'recovery plan test failover cleanup';
    const cleanup = await call<{ jobId: string }>(ctx, 'POST', `recoveryPlans/${SIMULATED_PLAN}/testFailoverCleanup`, {
        comments: 'hvr simulate',
    });
    await waitForJob(ctx, cleanup.jobId, cleanupStep);
    for (const [vmId, drillId] of drills) {
        const drill = await drillOf(ctx, vmId, drillId, cleanupStep);
        if (drill.properties.state !== 'CleanedUp') {
            throw new StepIncomplete(cleanupStep, `drill ${drillId} of ${vmId} is ${drill.properties.state}`);
        }
        const left = await remainingFailoverBlobs(ctx, vmId, drillId);
        if (left.length > 0) throw new StepIncomplete(cleanupStep, `failover blobs left: ${left.join(', ')}`);
    }
    ctx.say('recovery plan test failover cleaned up');
    return {
        planName: SIMULATED_PLAN,
        groups,
        testFailoverJobId: jobId,
        cleanupJobId: cleanup.jobId,
        heldAt: waitingFor.task,
        orderProblems,
        disks,
    };
}
