import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'node:crypto';
import { requireContractId } from '../shared/contracts/ids';
import { HvrError } from '../shared/errors';
import { allowedOperations, allowedOperationsLine, operationNotAllowed } from '../shared/failover/allowedOperations';
import { RecoverySettings } from '../shared/failover/drillSteps';
import { parseNetworkMapping } from '../shared/failover/networkMapping';
import { parseRecoveryPointChoice } from '../shared/failover/recoveryPointChoice';
import { TEST_FAILOVER_STATES } from '../shared/failover/states';
import { instanceIds } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { getDrill, listDrills } from '../shared/state/drills';
import { createJob, newJob } from '../shared/state/jobs';
import {
    deleteNetworkMapping,
    getNetworkMapping,
    listNetworkMappings,
    putNetworkMapping,
} from '../shared/state/networkMappings';
import { PROTECTION_STATES, stateScope } from '../shared/state/protectedItems';
import { listRecoveryPoints } from '../shared/state/recoveryPoints';
import { getSite } from '../shared/state/sites';
import { plannedFailoverShutdownTimeoutSeconds } from '../shared/failover/settings';
import {
    CHANGE_RECOVERY_POINT,
    CHANGE_RECOVERY_POINT_TASKS,
    ChangeRecoveryPointInput,
} from '../orchestrations/changeRecoveryPoint';
import { COMMIT_FAILOVER, COMMIT_TASKS, FAILOVER, failoverTasks, FailoverInput } from '../orchestrations/failover';
import {
    TEST_FAILOVER,
    TEST_FAILOVER_CLEANUP,
    TEST_FAILOVER_CLEANUP_TASKS,
    TEST_FAILOVER_TASKS,
    TestFailoverCleanupInput,
    TestFailoverInput,
} from '../orchestrations/testFailover';
import { accepted, isActive, jsonResponse, readJsonBody, responseForError, routeParam, withErrors } from './apiHttp';
import { isFailbackRequest, startFailback, startReprotect } from './apiFailback';
import { claimProtectedItem, requireProtectedItem } from './apiItems';
import { apiAuthLevel, requesterOf } from './apiCaller';

/**
 * Failover API: test failover and its cleanup, planned / unplanned failover and commit of a protected VM (202 with
 * the job, like the other long operations), the VM's drills, and network mappings per site.
 */

/** A source network's name as the provider reports it (not a contract id: it never names a blob or a session). */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function idParam(request: HttpRequest, name: string): string {
    return requireContractId(name, routeParam(request, name));
}

async function optionalBody(request: HttpRequest): Promise<Record<string, unknown>> {
    const text = await request.clone().text();
    if (text.trim() === '') return {};
    const body = await readJsonBody(request);
    const root = typeof body === 'object' && body !== null && 'properties' in body ? body.properties : body;
    if (typeof root !== 'object' || root === null || Array.isArray(root)) {
        throw new HvrError('VALIDATION_FAILED', `body must be a JSON object; got ${JSON.stringify(root)}.`);
    }
    return root as Record<string, unknown>;
}

/** The recovered VM's settings from a request body; VALIDATION_FAILED naming the field. */
export function parseRecoverySettings(body: Record<string, unknown>): RecoverySettings {
    const settings: RecoverySettings = {};
    if (body.networkAdapters !== undefined) {
        if (
            !Array.isArray(body.networkAdapters) ||
            body.networkAdapters.length === 0 ||
            body.networkAdapters.length > 8
        ) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `networkAdapters must list 1 to 8 adapters; got ${JSON.stringify(body.networkAdapters)}.`,
            );
        }
        settings.networkAdapters = body.networkAdapters.map((a: unknown, i: number) => {
            const n = (a as { sourceNetwork?: unknown } | null)?.sourceNetwork;
            if (typeof n !== 'string' || !NETWORK_NAME.test(n)) {
                throw new HvrError(
                    'VALIDATION_FAILED',
                    `networkAdapters[${i}].sourceNetwork must be a network name; got ${JSON.stringify(n)}.`,
                );
            }
            return { sourceNetwork: n };
        });
    }
    if (body.vmSize !== undefined) {
        if (typeof body.vmSize !== 'string')
            throw new HvrError('VALIDATION_FAILED', `vmSize must be a string; got ${JSON.stringify(body.vmSize)}.`);
        settings.vmSize = body.vmSize;
    }
    for (const field of ['cores', 'memoryMiB'] as const) {
        const v = body[field];
        if (v === undefined) continue;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 4 * 1024 * 1024) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `${field} must be a positive whole number; got ${JSON.stringify(v)}.`,
            );
        }
        settings[field] = v;
    }
    if (body.osType !== undefined) {
        if (body.osType !== 'Windows' && body.osType !== 'Linux') {
            throw new HvrError(
                'VALIDATION_FAILED',
                `osType must be Windows or Linux; got ${JSON.stringify(body.osType)}.`,
            );
        }
        settings.osType = body.osType;
    }
    return settings;
}

async function startTestFailover(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const vmId = idParam(request, 'vmId');
    const body = await optionalBody(request);
    const recoveryPoint = parseRecoveryPointChoice(body.recoveryPoint);
    const settings = parseRecoverySettings(body);
    const client = df.getClient(context);
    const instanceId = instanceIds.testFailover(vmId);
    const item = await requireProtectedItem(vmId);
    if (await isActive(client, instanceId)) {
        return accepted(request, item.currentJobId ?? '', instanceId, {
            alreadyRunning: true,
            drillId: item.currentDrillId,
        });
    }
    const jobId = randomUUID();
    const drillId = `tfo-${jobId}`;
    await claimProtectedItem(
        vmId,
        (i) => i.protectionState === 'Protected' && (i.testFailoverState ?? 'None') === 'None',
        'a test failover needs a protected VM with no drill awaiting cleanup',
        {
            testFailoverState: 'TestFailoverInProgress',
            testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverInProgress,
            currentDrillId: drillId,
        },
    );
    const at = ports().clock.now().toISOString();
    await createJob(
        stateScope(),
        newJob(jobId, 'TestFailover', vmId, TEST_FAILOVER_TASKS, at, instanceId, requesterOf(request)),
    );
    const input: TestFailoverInput = { vmId, drillId, jobId, recoveryPoint, settings };
    await client.startNew(TEST_FAILOVER, { instanceId, input });
    return accepted(request, jobId, instanceId, { drillId });
}

async function startTestFailoverCleanup(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const vmId = idParam(request, 'vmId');
    const body = await optionalBody(request);
    if (body.comments !== undefined && (typeof body.comments !== 'string' || body.comments.length > 1024)) {
        throw new HvrError('VALIDATION_FAILED', `comments must be a string of at most 1024 characters.`);
    }
    const item = await requireProtectedItem(vmId);
    const client = df.getClient(context);
    if (await isActive(client, instanceIds.testFailover(vmId)))
        throw operationNotAllowed(item, 'wait for the test failover to finish');
    const instanceId = instanceIds.testFailoverCleanup(vmId);
    if (await isActive(client, instanceId))
        return accepted(request, item.currentJobId ?? '', instanceId, { alreadyRunning: true });
    const drillId = item.currentDrillId;
    const drill = drillId ? await getDrill(stateScope(), vmId, drillId) : undefined;
    if (!drillId || !drill || drill.cleanedUp) throw operationNotAllowed(item, 'there is no test failover to clean up');
    const jobId = randomUUID();
    const at = ports().clock.now().toISOString();
    await createJob(
        stateScope(),
        newJob(jobId, 'TestFailoverCleanup', vmId, TEST_FAILOVER_CLEANUP_TASKS, at, instanceId, requesterOf(request)),
    );
    const input: TestFailoverCleanupInput = {
        vmId,
        drillId,
        jobId,
        drillCompleted: drill.completedAt !== undefined && drill.error === undefined,
        ...(typeof body.comments === 'string' ? { comments: body.comments } : {}),
    };
    await client.startNew(TEST_FAILOVER_CLEANUP, { instanceId, input });
    return accepted(request, jobId, instanceId, { drillId });
}

async function startFailover(
    request: HttpRequest,
    context: InvocationContext,
    kind: 'PlannedFailover' | 'UnplannedFailover',
): Promise<HttpResponseInit> {
    const vmId = idParam(request, 'vmId');
    const body = await optionalBody(request);
    // ASR's failback is a planned failover in the other direction (apiFailback.ts).
    if (kind === 'PlannedFailover' && isFailbackRequest(body)) return startFailback(request, context, vmId, body);
    const recoveryPoint = parseRecoveryPointChoice(body.recoveryPoint);
    if (kind === 'PlannedFailover' && recoveryPoint.type !== 'Latest') {
        throw new HvrError(
            'VALIDATION_FAILED',
            `A planned failover uses the latest recovery point; got ${recoveryPoint.type}.`,
        );
    }
    const settings = parseRecoverySettings(body);
    if (kind === 'PlannedFailover') plannedFailoverShutdownTimeoutSeconds();
    const client = df.getClient(context);
    const instanceId = instanceIds.failover(vmId);
    const item = await requireProtectedItem(vmId);
    if (await isActive(client, instanceId))
        return accepted(request, item.currentJobId ?? '', instanceId, { alreadyRunning: true });
    const jobId = randomUUID();
    const drillId = `fo-${jobId}`;
    const inProgress = kind === 'PlannedFailover' ? 'PlannedFailoverInProgress' : 'UnplannedFailoverInProgress';
    await claimProtectedItem(
        vmId,
        (i) => allowedOperations(i).includes(kind),
        kind === 'PlannedFailover'
            ? 'a planned failover needs a protected VM (replicating) with no test failover in progress or awaiting cleanup'
            : 'failover needs a protected VM with no test failover in progress or awaiting cleanup',
        {
            protectionState: inProgress,
            protectionStateDescription: PROTECTION_STATES[inProgress],
            currentJobId: jobId,
            currentDrillId: drillId,
        },
    );
    const at = ports().clock.now().toISOString();
    await createJob(stateScope(), newJob(jobId, kind, vmId, failoverTasks(kind), at, instanceId, requesterOf(request)));
    const input: FailoverInput = {
        vmId,
        drillId,
        jobId,
        kind,
        recoveryPoint,
        settings,
        siteId: item.siteId,
        ...(kind === 'PlannedFailover' ? { shutdownTimeoutSeconds: plannedFailoverShutdownTimeoutSeconds() } : {}),
    };
    await client.startNew(FAILOVER, { instanceId, input });
    return accepted(request, jobId, instanceId, { drillId });
}

async function startCommit(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const vmId = idParam(request, 'vmId');
    const item = await requireProtectedItem(vmId);
    const client = df.getClient(context);
    const instanceId = instanceIds.commitFailover(vmId);
    if (await isActive(client, instanceId))
        return accepted(request, item.currentJobId ?? '', instanceId, { alreadyRunning: true });
    const drillId = item.currentDrillId;
    const recoveryPointId = item.failoverRecoveryPointId;
    if (!allowedOperations(item).includes('Commit') || !drillId || !recoveryPointId)
        throw operationNotAllowed(item, 'only a failed-over VM can be committed');
    const jobId = randomUUID();
    const at = ports().clock.now().toISOString();
    await createJob(
        stateScope(),
        newJob(jobId, 'CommitFailover', vmId, COMMIT_TASKS, at, instanceId, requesterOf(request)),
    );
    await client.startNew(COMMIT_FAILOVER, { instanceId, input: { vmId, drillId, jobId, recoveryPointId } });
    return accepted(request, jobId, instanceId, { drillId });
}

/** The point named by an applyRecoveryPoint body: `recoveryPointId`, or `recoveryPoint: { type: "Custom", … }`. */
export function parseRecoveryPointToApply(body: Record<string, unknown>): string {
    if (typeof body.recoveryPointId === 'string' && body.recoveryPointId !== '' && body.recoveryPointId.length <= 300) {
        return body.recoveryPointId;
    }
    if (body.recoveryPoint !== undefined) {
        const choice = parseRecoveryPointChoice(body.recoveryPoint);
        if (choice.type === 'Custom') return choice.recoveryPointId;
    }
    throw new HvrError(
        'VALIDATION_FAILED',
        `applyRecoveryPoint needs recoveryPointId (a recovery point of the VM, GET .../recoveryPoints); got ${JSON.stringify(
            body.recoveryPointId ?? body.recoveryPoint ?? null,
        )}.`,
    );
}

async function startChangeRecoveryPoint(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const vmId = idParam(request, 'vmId');
    const recoveryPointId = parseRecoveryPointToApply(await optionalBody(request));
    const item = await requireProtectedItem(vmId);
    const client = df.getClient(context);
    const instanceId = instanceIds.changeRecoveryPoint(vmId);
    if (await isActive(client, instanceId))
        return accepted(request, item.currentJobId ?? '', instanceId, { alreadyRunning: true });
    const drillId = item.currentDrillId;
    if (!allowedOperations(item).includes('ChangePit') || !drillId) {
        throw operationNotAllowed(
            item,
            'the recovery point can be changed only after a failover and before its commit',
        );
    }
    const points = await listRecoveryPoints(stateScope(), vmId);
    if (!points.some((p) => p.recoveryPointId === recoveryPointId)) {
        throw new HvrError(
            'NOT_FOUND',
            `VM ${vmId} has no recovery point ${recoveryPointId}; its points are ${
                points.map((p) => p.recoveryPointId).join(', ') || 'none'
            }; ${allowedOperationsLine(item)}.`,
            { allowedOperations: allowedOperations(item) },
        );
    }
    if (recoveryPointId === item.failoverRecoveryPointId) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `VM ${vmId} already runs from recovery point ${recoveryPointId}; name another one of ${points
                .map((p) => p.recoveryPointId)
                .filter((id) => id !== recoveryPointId)
                .join(', ')}.`,
        );
    }
    const jobId = randomUUID();
    await claimProtectedItem(
        vmId,
        (i) => allowedOperations(i).includes('ChangePit') && i.currentDrillId === drillId,
        'the recovery point can be changed only after a failover and before its commit',
        {
            protectionState: 'ChangeRecoveryPointInProgress',
            protectionStateDescription: PROTECTION_STATES.ChangeRecoveryPointInProgress,
            currentJobId: jobId,
        },
    );
    const at = ports().clock.now().toISOString();
    await createJob(
        stateScope(),
        newJob(jobId, 'ApplyRecoveryPoint', vmId, CHANGE_RECOVERY_POINT_TASKS, at, instanceId, requesterOf(request)),
    );
    const input: ChangeRecoveryPointInput = { vmId, drillId, jobId, recoveryPointId };
    await client.startNew(CHANGE_RECOVERY_POINT, { instanceId, input });
    return accepted(request, jobId, instanceId, { drillId, recoveryPointId });
}

/**
 * A refusal that knows what the item allows says so in the body too (`error.allowedOperations`), so a client
 * need not parse the message.
 */
function withAllowedOperations(
    handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
    return async (request, context) => {
        try {
            return await handler(request, context);
        } catch (err) {
            const allowed = err instanceof HvrError ? err.details?.allowedOperations : undefined;
            if (!(err instanceof HvrError) || !Array.isArray(allowed)) throw err;
            const response = responseForError(err, context);
            const body = response.jsonBody as { error: Record<string, unknown> };
            return { ...response, jsonBody: { error: { ...body.error, allowedOperations: allowed } } };
        }
    };
}

/** The POST actions on a protected item this API serves (ASR's operation names, as routes). */
export const FAILOVER_ACTIONS = [
    'testFailover',
    'testFailoverCleanup',
    'plannedFailover',
    'unplannedFailover',
    'applyRecoveryPoint',
    'failoverCommit',
    /** Re-protect after failback (reverse replication; apiFailback.ts). */
    'reProtect',
] as const;

export async function failoverAction(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const action = routeParam(request, 'action');
    switch (action) {
        case 'testFailover':
            return startTestFailover(request, context);
        case 'testFailoverCleanup':
            return startTestFailoverCleanup(request, context);
        case 'plannedFailover':
            return startFailover(request, context, 'PlannedFailover');
        case 'unplannedFailover':
            return startFailover(request, context, 'UnplannedFailover');
        case 'applyRecoveryPoint':
            return startChangeRecoveryPoint(request, context);
        case 'failoverCommit':
            return startCommit(request, context);
        case 'reProtect':
            return startReprotect(request, context, idParam(request, 'vmId'));
        default:
            throw new HvrError('NOT_FOUND', `Unknown action "${action}".`);
    }
}

/** Function keys, or none behind App Service authentication (apiCaller.ts). */
const API_AUTH_LEVEL = apiAuthLevel();

app.http('apiFailoverAction', {
    methods: ['POST'],
    authLevel: API_AUTH_LEVEL,
    route: `replicationProtectedItems/{vmId}/{action:regex(^(${FAILOVER_ACTIONS.join('|')})$)}`,
    extraInputs: [df.input.durableClient()],
    handler: withErrors(withAllowedOperations(failoverAction)),
});

export async function listVmDrills(request: HttpRequest): Promise<HttpResponseInit> {
    const vmId = idParam(request, 'vmId');
    await requireProtectedItem(vmId);
    const drills = await listDrills(stateScope(), vmId);
    return jsonResponse(200, { value: drills.map(({ drillId, ...properties }) => ({ name: drillId, properties })) });
}

app.http('apiFailoverDrills', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}/drills',
    handler: withErrors(listVmDrills),
});

export async function networkMappings(request: HttpRequest): Promise<HttpResponseInit> {
    const siteId = idParam(request, 'siteId');
    const scope = stateScope();
    if (!(await getSite(scope, siteId))) throw new HvrError('NOT_FOUND', `Site ${siteId} is not registered.`);
    const sourceNetwork = request.params.sourceNetwork;
    const present = (m: { sourceNetwork: string }): { name: string; properties: unknown } => ({
        name: m.sourceNetwork,
        properties: m,
    });
    if (sourceNetwork === undefined || sourceNetwork === '') {
        if (request.method !== 'GET')
            throw new HvrError('VALIDATION_FAILED', `${request.method} needs a source network in the URL.`);
        return jsonResponse(200, { value: (await listNetworkMappings(scope, siteId)).map(present) });
    }
    switch (request.method) {
        case 'PUT': {
            const mapping = parseNetworkMapping(
                siteId,
                sourceNetwork,
                await readJsonBody(request),
                ports().clock.now().toISOString(),
            );
            await putNetworkMapping(scope, mapping);
            return jsonResponse(200, present(mapping));
        }
        case 'GET': {
            const mapping = await getNetworkMapping(scope, siteId, sourceNetwork);
            if (!mapping) throw new HvrError('NOT_FOUND', `Network ${sourceNetwork} of site ${siteId} is not mapped.`);
            return jsonResponse(200, present(mapping));
        }
        case 'DELETE':
            if (!(await deleteNetworkMapping(scope, siteId, sourceNetwork))) {
                throw new HvrError('NOT_FOUND', `Network ${sourceNetwork} of site ${siteId} is not mapped.`);
            }
            return { status: 204 };
        default:
            throw new HvrError('VALIDATION_FAILED', `Method ${request.method} is not supported here.`);
    }
}

app.http('apiNetworkMappings', {
    methods: ['GET', 'PUT', 'DELETE'],
    authLevel: API_AUTH_LEVEL,
    route: 'sites/{siteId}/networkMappings/{sourceNetwork?}',
    handler: withErrors(networkMappings),
});
