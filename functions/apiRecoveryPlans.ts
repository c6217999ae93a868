import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'node:crypto';
import { isContractId } from '../shared/contracts/ids';
import { HvrError } from '../shared/errors';
import { plannedFailoverShutdownTimeoutSeconds } from '../shared/failover/settings';
import { instanceIds, lifecycleEvents } from '../shared/lifecycle/instances';
import { planSteps, planTaskNames } from '../shared/plans/planSteps';
import {
    checkPlanVmsProtected,
    parseRecoveryPlan,
    PlanOperation,
    planRefused,
    planVms,
    RecoveryPlanDefinition,
} from '../shared/plans/recoveryPlan';
import { PLAN_JOB_KINDS, PlanVmOperation } from '../shared/plans/vmOperation';
import { ports } from '../shared/ports';
import { createJob, getJob, newJob } from '../shared/state/jobs';
import { getProtectedItem, ProtectedItem, stateScope } from '../shared/state/protectedItems';
import {
    deleteRecoveryPlan,
    getRecoveryPlan,
    listRecoveryPlans,
    putRecoveryPlan,
    RecoveryPlan,
    updateRecoveryPlanRun,
} from '../shared/state/recoveryPlans';
import {
    RECOVERY_PLAN,
    RecoveryPlanInput,
    RecoveryPlanResumeEvent,
    RecoveryPlanStatus,
} from '../orchestrations/recoveryPlan';
import { parseRecoverySettings } from './apiFailover';
import { accepted, isActive, jsonResponse, readJsonBody, responseForError, routeParam, withErrors } from './apiHttp';
import { apiAuthLevel, requesterOf } from './apiCaller';

/**
 * `/api/recoveryPlans`: recovery plans (ASR's replicationRecoveryPlans) — define, read, delete — and their
 * operations, each a job (202): test failover and its cleanup, planned and unplanned failover, commit, and the
 * resume of a plan held by a manual action. A plan is checked when it is written (every VM protected, none twice,
 * at most 100) and cannot change while one of its jobs runs.
 */

/** The POST actions on a plan: ASR's operation names as routes, and the operation each runs. */
export const PLAN_ACTIONS = {
    testFailover: 'TestFailover',
    testFailoverCleanup: 'TestFailoverCleanup',
    plannedFailover: 'PlannedFailover',
    unplannedFailover: 'UnplannedFailover',
    failoverCommit: 'Commit',
    /** ASR's reProtect / failback: answered 409 until the per-VM failback orchestration exists. */
    failback: 'Failback',
} as const satisfies Record<string, PlanOperation>;

export const RESUME_ACTION = 'resume';

function planName(request: HttpRequest): string {
    const name = routeParam(request, 'name');
    if (!isContractId(name)) throw planRefused('PLAN_NAME', `plan name ${JSON.stringify(name)} is not valid`);
    return name;
}

function present(
    plan: RecoveryPlan,
    status?: RecoveryPlanStatus,
): { name: string; etag?: string; properties: unknown } {
    const { name, etag, ...properties } = plan;
    const groups = plan.groups.map((g, i) => ({ group: i + 1, ...g }));
    return {
        name,
        ...(etag !== undefined ? { etag } : {}),
        properties: {
            ...properties,
            groups,
            vmCount: planVms(plan).length,
            ...(status?.waitingFor && plan.run?.jobId === status.jobId ? { waitingFor: status.waitingFor } : {}),
        },
    };
}

async function runningStatus(client: df.DurableClient, name: string): Promise<RecoveryPlanStatus | undefined> {
    const instanceId = instanceIds.recoveryPlan(name);
    if (!(await isActive(client, instanceId))) return undefined;
    const status = await client.getStatus(instanceId).catch(() => undefined);
    return (status?.customStatus as RecoveryPlanStatus | undefined) ?? undefined;
}

async function requirePlan(name: string): Promise<RecoveryPlan> {
    const plan = await getRecoveryPlan(stateScope(), name);
    if (!plan) throw new HvrError('NOT_FOUND', `Recovery plan ${name} does not exist.`);
    return plan;
}

async function refuseWhileRunning(client: df.DurableClient, plan: RecoveryPlan, what: string): Promise<void> {
    if (!(await isActive(client, instanceIds.recoveryPlan(plan.name)))) return;
    throw new HvrError(
        'CONFLICT',
        `Recovery plan ${plan.name} runs job ${plan.run?.jobId ?? '?'} (${plan.run?.operation ?? 'an operation'}); ${what} when the job has ended.`,
        { rule: 'PLAN_JOB_RUNNING', jobId: plan.run?.jobId },
    );
}

async function validatedDefinition(name: string, body: unknown): Promise<RecoveryPlanDefinition> {
    const definition = parseRecoveryPlan(name, body, parseRecoverySettings);
    const scope = stateScope();
    const items = new Map<string, ProtectedItem>();
    for (const vm of planVms(definition)) {
        const item = await getProtectedItem(scope, vm.vmId);
        if (item) items.set(vm.vmId, item);
    }
    checkPlanVmsProtected(definition, items);
    return definition;
}

export async function listPlans(_request: HttpRequest): Promise<HttpResponseInit> {
    const plans = await listRecoveryPlans(stateScope());
    return jsonResponse(200, { value: plans.map((p) => present(p)) });
}

export async function recoveryPlan(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const name = planName(request);
    const scope = stateScope();
    const client = df.getClient(context);
    switch (request.method) {
        case 'GET': {
            const plan = await requirePlan(name);
            const status = await runningStatus(client, name);
            return jsonResponse(200, present(plan, status), plan.etag ? { ETag: plan.etag } : {});
        }
        case 'PUT': {
            const body = await readJsonBody(request);
            const definition = await validatedDefinition(name, body);
            const existing = await getRecoveryPlan(scope, name);
            const ifMatch = request.headers.get('if-match') ?? undefined;
            const at = ports().clock.now().toISOString();
            if (!existing) {
                if (ifMatch)
                    throw new HvrError(
                        'CONCURRENT_UPDATE',
                        `Recovery plan ${name} does not exist; If-Match cannot match.`,
                    );
                const stored = await putRecoveryPlan(
                    scope,
                    { ...definition, createdAt: at, updatedAt: at },
                    { create: true },
                );
                return jsonResponse(201, present(stored), stored.etag ? { ETag: stored.etag } : {});
            }
            await refuseWhileRunning(client, existing, 'change it');
            if (ifMatch && ifMatch !== existing.etag) {
                throw new HvrError(
                    'CONCURRENT_UPDATE',
                    `Recovery plan ${name} changed since ${ifMatch}; read it again.`,
                );
            }
            // A changed definition starts a new run: a retry continues only the plan it started with.
            const stored = await putRecoveryPlan(
                scope,
                { ...definition, createdAt: existing.createdAt, updatedAt: at },
                { etag: existing.etag ?? '*' },
            );
            return jsonResponse(200, present(stored), stored.etag ? { ETag: stored.etag } : {});
        }
        case 'DELETE': {
            const existing = await getRecoveryPlan(scope, name);
            if (!existing) throw new HvrError('NOT_FOUND', `Recovery plan ${name} does not exist.`);
            await refuseWhileRunning(client, existing, 'delete it');
            await deleteRecoveryPlan(scope, name, existing.etag);
            return { status: 204 };
        }
        default:
            throw new HvrError('VALIDATION_FAILED', `Method ${request.method} is not supported here.`);
    }
}

async function optionalObject(request: HttpRequest): Promise<Record<string, unknown>> {
    const text = await request.clone().text();
    if (text.trim() === '') return {};
    const body = await readJsonBody(request);
    const root = typeof body === 'object' && body !== null && 'properties' in body ? body.properties : body;
    if (typeof root !== 'object' || root === null || Array.isArray(root)) {
        throw new HvrError('VALIDATION_FAILED', `body must be a JSON object; got ${JSON.stringify(root)}.`);
    }
    return root as Record<string, unknown>;
}

function optionalText(body: Record<string, unknown>, field: string, max: number): string | undefined {
    const v = body[field];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.length > max) {
        throw new HvrError('VALIDATION_FAILED', `${field} must be a string of at most ${max} characters.`);
    }
    return v;
}

async function startOperation(
    request: HttpRequest,
    context: InvocationContext,
    operation: PlanOperation,
): Promise<HttpResponseInit> {
    const name = planName(request);
    const body = await optionalObject(request);
    const comments = optionalText(body, 'comments', 1024);
    if (operation === 'Failback') {
        throw new HvrError(
            'CONFLICT',
            `Failback of recovery plan ${name} needs the per-VM failback orchestration, which this version does not have yet; fail back each VM when it does.`,
            { rule: 'PLAN_OPERATION_NOT_AVAILABLE' },
        );
    }
    const vmOperation: PlanVmOperation = operation;
    const shutdownTimeoutSeconds =
        vmOperation === 'PlannedFailover' ? plannedFailoverShutdownTimeoutSeconds() : undefined;
    const plan = await requirePlan(name);
    const client = df.getClient(context);
    const instanceId = instanceIds.recoveryPlan(name);
    if (await isActive(client, instanceId)) {
        if (plan.run?.operation === operation) {
            return accepted(request, plan.run.jobId, instanceId, { alreadyRunning: true, recoveryPlanName: name });
        }
        await refuseWhileRunning(client, plan, `run ${operation}`);
    }
    // The same operation after a failed job continues its run; anything else starts a new one.
    const previous = plan.run;
    const resumes = previous !== undefined && previous.operation === operation && previous.state !== 'Succeeded';
    const completedSteps = resumes ? previous.completedSteps : [];
    const jobId = randomUUID();
    const at = ports().clock.now().toISOString();
    const { changed } = await updateRecoveryPlanRun(
        stateScope(),
        name,
        (current) =>
            // Someone else started a job since we looked: theirs stands.
            current.run?.jobId !== previous?.jobId
                ? undefined
                : {
                      operation,
                      jobId,
                      state: 'InProgress',
                      completedSteps,
                      startedAt: resumes ? previous.startedAt : at,
                  },
        at,
    );
    if (!changed) {
        const now = await requirePlan(name);
        return accepted(request, now.run?.jobId ?? '', instanceId, { alreadyRunning: true, recoveryPlanName: name });
    }
    const tasks = planTaskNames(planSteps(plan, operation));
    await createJob(stateScope(), {
        ...newJob(jobId, PLAN_JOB_KINDS[vmOperation], '', tasks, at, instanceId, requesterOf(request)),
        recoveryPlanName: name,
    });
    const { createdAt: _c, updatedAt: _u, run: _r, etag: _e, ...definition } = plan;
    const input: RecoveryPlanInput = {
        jobId,
        operation: vmOperation,
        plan: definition,
        completedSteps,
        ...(resumes ? { resumedFromJobId: previous.jobId } : {}),
        ...(shutdownTimeoutSeconds !== undefined ? { shutdownTimeoutSeconds } : {}),
        ...(comments !== undefined ? { comments } : {}),
    };
    await client.startNew(RECOVERY_PLAN, { instanceId, input });
    return accepted(request, jobId, instanceId, {
        recoveryPlanName: name,
        ...(resumes ? { resumedFromJobId: previous.jobId, completedSteps: completedSteps.length } : {}),
    });
}

async function resume(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const name = planName(request);
    const body = await optionalObject(request);
    const action = optionalText(body, 'action', 64);
    const comments = optionalText(body, 'comments', 1024);
    await requirePlan(name);
    const client = df.getClient(context);
    const status = await runningStatus(client, name);
    const waiting = status?.waitingFor;
    if (!status || !waiting) {
        throw new HvrError(
            'CONFLICT',
            `Recovery plan ${name} is not waiting for an operator (no manual action holds it).`,
            {
                rule: 'PLAN_NOT_WAITING',
            },
        );
    }
    if (action !== undefined && action !== waiting.action) {
        throw new HvrError(
            'CONFLICT',
            `Recovery plan ${name} waits on the manual action "${waiting.action}", not "${action}".`,
            { rule: 'PLAN_NOT_WAITING' },
        );
    }
    const by = request.headers.get('x-ms-client-principal-name') ?? optionalText(body, 'by', 128) ?? 'an operator';
    const event: RecoveryPlanResumeEvent = {
        jobId: status.jobId,
        step: waiting.step,
        by,
        at: ports().clock.now().toISOString(),
        ...(comments !== undefined ? { comments } : {}),
    };
    const instanceId = instanceIds.recoveryPlan(name);
    await client.raiseEvent(instanceId, lifecycleEvents.recoveryPlanResume, event);
    return accepted(request, status.jobId, instanceId, { recoveryPlanName: name, resumed: waiting.action });
}

export async function recoveryPlanAction(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const action = routeParam(request, 'action');
    if (action === RESUME_ACTION) return resume(request, context);
    const operation = (PLAN_ACTIONS as Record<string, PlanOperation>)[action];
    if (!operation) throw new HvrError('NOT_FOUND', `Unknown action "${action}".`);
    return startOperation(request, context, operation);
}

/** A plan refusal names its rule in the body too (`error.rule`), so a client need not parse the message. */
function withRule(
    handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
    return async (request, context) => {
        try {
            return await handler(request, context);
        } catch (err) {
            const rule = err instanceof HvrError ? err.details?.rule : undefined;
            if (!(err instanceof HvrError) || typeof rule !== 'string') throw err;
            const response = responseForError(err, context);
            const body = response.jsonBody as { error: Record<string, unknown> };
            return { ...response, jsonBody: { error: { ...body.error, rule } } };
        }
    };
}

/** The plan's jobs, newest first (`GET /api/replicationJobs?recoveryPlanName=` lists the same). */
export async function planJob(request: HttpRequest): Promise<HttpResponseInit> {
    const name = planName(request);
    const plan = await requirePlan(name);
    const job = plan.run ? await getJob(stateScope(), plan.run.jobId) : undefined;
    if (!job) throw new HvrError('NOT_FOUND', `Recovery plan ${name} has run no job yet.`);
    return jsonResponse(200, job);
}

/** Function keys, or none behind App Service authentication (apiCaller.ts). */
const API_AUTH_LEVEL = apiAuthLevel();

app.http('apiRecoveryPlans', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'recoveryPlans',
    handler: withErrors(listPlans),
});

app.http('apiRecoveryPlan', {
    methods: ['GET', 'PUT', 'DELETE'],
    authLevel: API_AUTH_LEVEL,
    route: 'recoveryPlans/{name}',
    extraInputs: [df.input.durableClient()],
    handler: withErrors(withRule(recoveryPlan)),
});

app.http('apiRecoveryPlanAction', {
    methods: ['POST'],
    authLevel: API_AUTH_LEVEL,
    route: `recoveryPlans/{name}/{action:regex(^(${[...Object.keys(PLAN_ACTIONS), RESUME_ACTION].join('|')})$)}`,
    extraInputs: [df.input.durableClient()],
    handler: withErrors(withRule(recoveryPlanAction)),
});

app.http('apiRecoveryPlanJob', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'recoveryPlans/{name}/currentJob',
    handler: withErrors(planJob),
});
