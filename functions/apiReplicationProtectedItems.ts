import { allowedOperations } from '../shared/failover/allowedOperations';
import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { startOnce } from '../shared/lifecycle/durableClientErrors';
import { randomUUID } from 'node:crypto';
import { requireContractId } from '../shared/contracts/ids';
import { HvrError } from '../shared/errors';
import { rpoSecondsAt } from '../shared/health';
import { instanceIds } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { latestCleanPoint } from '../shared/replica/cleanPoint';
import { pointStorage } from '../shared/replica/pointStorage';
import { listProtectedItemsAsTheyAre, withRepairState } from '../shared/replica/repairState';
import { getPolicy } from '../shared/state/policies';
import {
    createProtectedItem,
    getProtectedItem,
    PROTECTION_STATES,
    ProtectedItem,
    ProtectionState,
    stateScope,
    updateProtectedItem,
} from '../shared/state/protectedItems';
import { createJob, newJob } from '../shared/state/jobs';
import { listRecoveryPoints } from '../shared/state/recoveryPoints';
import { listEvents } from '../shared/state/events';
import { listRpoSamples } from '../shared/state/rpoHistory';
import { listReplicaDisks } from '../shared/state/disks';
import { getSite } from '../shared/state/sites';
import { VmDescription, VmDiskDescription } from '../shared/supportMatrix';
import {
    ENABLE_PROTECTION,
    ENABLE_PROTECTION_INPUT_VERSION,
    ENABLE_PROTECTION_TASKS,
    EnableProtectionInput,
} from '../orchestrations/enableProtection';
import {
    DISABLE_PROTECTION,
    disableProtectionTasks,
    DisableProtectionInput,
} from '../orchestrations/disableProtection';
import { accepted, isActive, jsonResponse, providerSites, readJsonBody, routeParam, withErrors } from './apiHttp';
import { requireProtectedItem } from './apiItems';
import { apiAuthLevel, requesterOf } from './apiCaller';

/**
 * `/api/replicationProtectedItems`: enable, list, inspect, disable and resynchronize protected VMs. Long
 * operations answer 202 with the job that tracks them.
 */

/** States in which a new enable may replace the item (a failed attempt). */
const RETRYABLE_STATES: ReadonlySet<ProtectionState> = new Set(['EnablingFailed', 'InitialReplicationFailed']);
/** The resync orchestration, when the app has it. */
export const RESYNC_ORCHESTRATION = 'resync';

function vmIdParam(request: HttpRequest): string {
    return requireContractId('vmId', routeParam(request, 'vmId'));
}

function invalid(field: string, value: unknown, rule: string): HvrError {
    return new HvrError('VALIDATION_FAILED', `${field} ${rule}; got ${JSON.stringify(value) ?? 'nothing'}.`, {
        field,
        value,
    });
}

/** The enable request: shape only; the support matrix is the job's prerequisites check, as in ASR. */
export function parseEnableRequest(
    vmId: string,
    body: unknown,
): { siteId: string; policyName: string; vm: VmDescription } {
    const root = typeof body === 'object' && body !== null && 'properties' in body ? body.properties : body;
    if (typeof root !== 'object' || root === null || Array.isArray(root))
        throw invalid('body', root, 'must be a JSON object');
    const r = root as Record<string, unknown>;
    const siteId = requireContractId('siteId', r.siteId);
    if (typeof r.policyName !== 'string' || r.policyName === '') {
        throw invalid('policyName', r.policyName, 'must name a replication policy');
    }
    const vm = r.vm;
    if (typeof vm !== 'object' || vm === null || Array.isArray(vm)) throw invalid('vm', vm, 'must be an object');
    const v = vm as Record<string, unknown>;
    if (typeof v.name !== 'string') throw invalid('vm.name', v.name, 'must be a string');
    if (v.generation !== 1 && v.generation !== 2) throw invalid('vm.generation', v.generation, 'must be 1 or 2');
    if (!Array.isArray(v.disks) || v.disks.length === 0 || v.disks.length > 64) {
        throw invalid('vm.disks', v.disks, 'must be a list of 1 to 64 disks');
    }
    const disks: VmDiskDescription[] = v.disks.map((d: unknown, i: number) => {
        if (typeof d !== 'object' || d === null) throw invalid(`vm.disks[${i}]`, d, 'must be an object');
        const disk = d as Record<string, unknown>;
        const diskId = requireContractId(`vm.disks[${i}].diskId`, disk.diskId);
        if (typeof disk.sizeBytes !== 'number' || !Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0) {
            throw invalid(`vm.disks[${i}].sizeBytes`, disk.sizeBytes, 'must be a positive whole number of bytes');
        }
        const sector = disk.logicalSectorBytes ?? 512;
        if (typeof sector !== 'number' || !Number.isInteger(sector)) {
            throw invalid(`vm.disks[${i}].logicalSectorBytes`, sector, 'must be a whole number of bytes');
        }
        if (typeof disk.isOsDisk !== 'boolean')
            throw invalid(`vm.disks[${i}].isOsDisk`, disk.isOsDisk, 'must be true or false');
        if (disk.shared !== undefined && typeof disk.shared !== 'boolean') {
            throw invalid(`vm.disks[${i}].shared`, disk.shared, 'must be true or false');
        }
        return {
            diskId,
            sizeBytes: disk.sizeBytes,
            logicalSectorBytes: sector,
            isOsDisk: disk.isOsDisk,
            ...(disk.shared === true ? { shared: true } : {}),
        };
    });
    return { siteId, policyName: r.policyName, vm: { vmId, name: v.name, generation: v.generation, disks } };
}

/**
 * RPO now, from the capture time of the newest data every disk applied (shared/health.ts owns the rule); null
 * while there is none or the VM is not replicating. The stored `rpoSeconds` is the monitor's value at its last
 * change: never shown, it is stale the moment it is written.
 */
export function currentRpoSeconds(item: ProtectedItem, now: Date): number | null {
    if (item.protectionState !== 'Protected') return null;
    return rpoSecondsAt(item.lastCapturedAt, now);
}

/** The item as the API shows it: ASR's `{ name, properties }` shape. */
export function presentItem(item: ProtectedItem, now: Date): { name: string; properties: Record<string, unknown> } {
    const { vmId, ...properties } = item;
    return {
        name: vmId,
        properties: {
            ...properties,
            rpoSeconds: currentRpoSeconds(item, now),
            allowedOperations: allowedOperations(item),
        },
    };
}

export async function listReplicationProtectedItems(request: HttpRequest): Promise<HttpResponseInit> {
    const siteId = request.query.get('siteId') ?? undefined;
    const now = ports().clock.now();
    const items = await listProtectedItemsAsTheyAre(stateScope(), siteId !== undefined ? { siteId } : {}, now);
    return jsonResponse(200, { value: items.map((item) => presentItem(item, now)) });
}

async function enableProtection(
    request: HttpRequest,
    context: InvocationContext,
    vmId: string,
): Promise<HttpResponseInit> {
    const parsed = parseEnableRequest(vmId, await readJsonBody(request));
    const scope = stateScope();
    const client = df.getClient(context);
    const instanceId = instanceIds.enableProtection(vmId);
    const existing = await getProtectedItem(scope, vmId);
    // A repeated enable finds the running instance and answers with its job instead of starting another.
    if (existing && (await isActive(client, instanceId)) && existing.currentJobId !== undefined) {
        return accepted(request, existing.currentJobId, instanceId, { alreadyRunning: true });
    }
    if (existing && !RETRYABLE_STATES.has(existing.protectionState)) {
        throw new HvrError(
            'CONFLICT',
            `VM ${vmId} is already ${existing.protectionStateDescription.toLowerCase()}; disable protection first to change it.`,
        );
    }
    if (!(await getSite(scope, parsed.siteId)))
        throw new HvrError('NOT_FOUND', `Site ${parsed.siteId} is not registered.`);
    if (!(await getPolicy(scope, parsed.policyName))) {
        throw new HvrError('NOT_FOUND', `Replication policy ${parsed.policyName} does not exist.`);
    }
    // The provider channel accepts commands about this VM from its site only (CONFLICT if another site owns it).
    await providerSites(scope).assignVm(vmId, parsed.siteId, ports().clock.now());

    const at = ports().clock.now().toISOString();
    const jobId = randomUUID();
    const item: ProtectedItem = {
        vmId,
        siteId: parsed.siteId,
        vmName: parsed.vm.name,
        generation: parsed.vm.generation,
        policyName: parsed.policyName,
        disks: parsed.vm.disks,
        protectionState: 'EnablingProtection',
        protectionStateDescription: PROTECTION_STATES.EnablingProtection,
        resynchronizationState: 'None',
        replicationHealth: 'Normal',
        healthReasons: [],
        currentJobId: jobId,
        createdAt: at,
        updatedAt: at,
    };
    if (existing) {
        // Retrying a failed enable: take the item over only if it is still in the failed state we saw.
        const { changed, item: current } = await updateProtectedItem(
            scope,
            vmId,
            (now) => {
                if (!RETRYABLE_STATES.has(now.protectionState)) return undefined;
                const { vmId: _v, createdAt: _c, updatedAt: _u, ...rest } = item;
                return rest;
            },
            at,
        );
        if (!changed) {
            if (current.currentJobId !== undefined)
                return accepted(request, current.currentJobId, instanceId, { alreadyRunning: true });
            throw new HvrError('CONFLICT', `VM ${vmId} changed while enabling; try again.`);
        }
    } else {
        try {
            await createProtectedItem(scope, item);
        } catch (err) {
            // Two enables raced: the other one created the item and owns the job.
            if (err instanceof HvrError && err.code === 'CONFLICT') {
                const winner = await getProtectedItem(scope, vmId);
                if (winner?.currentJobId !== undefined) {
                    return accepted(request, winner.currentJobId, instanceId, { alreadyRunning: true });
                }
            }
            throw err;
        }
    }
    await createJob(
        scope,
        newJob(jobId, 'EnableProtection', vmId, ENABLE_PROTECTION_TASKS, at, instanceId, requesterOf(request)),
    );
    const input: EnableProtectionInput = {
        version: ENABLE_PROTECTION_INPUT_VERSION,
        vmId,
        siteId: parsed.siteId,
        policyName: parsed.policyName,
        jobId,
        vm: parsed.vm,
    };
    if ((await startOnce(client, ENABLE_PROTECTION, instanceId, input)) === 'alreadyRunning') {
        throw new HvrError('CONFLICT', `${instanceId} is already running; wait for it to finish.`, { instanceId });
    }
    return accepted(request, jobId, instanceId);
}

async function disableProtection(
    request: HttpRequest,
    context: InvocationContext,
    vmId: string,
): Promise<HttpResponseInit> {
    const keep = request.query.get('keepReplica') ?? 'false';
    if (keep !== 'true' && keep !== 'false') {
        throw new HvrError('VALIDATION_FAILED', `keepReplica must be true or false; got "${keep}".`);
    }
    const scope = stateScope();
    const item = await getProtectedItem(scope, vmId);
    if (!item) throw new HvrError('NOT_FOUND', `VM ${vmId} is not protected.`);
    const client = df.getClient(context);
    const instanceId = instanceIds.disableProtection(vmId);
    if ((await isActive(client, instanceId)) && item.currentJobId !== undefined) {
        return accepted(request, item.currentJobId, instanceId, { alreadyRunning: true });
    }
    const at = ports().clock.now().toISOString();
    const jobId = randomUUID();
    const keepReplica = keep === 'true';
    await createJob(
        scope,
        newJob(
            jobId,
            'DisableProtection',
            vmId,
            disableProtectionTasks(keepReplica),
            at,
            instanceId,
            requesterOf(request),
        ),
    );
    const input: DisableProtectionInput = {
        vmId,
        siteId: item.siteId,
        diskIds: item.disks.map((d) => d.diskId),
        jobId,
        keepReplica,
    };
    if ((await startOnce(client, DISABLE_PROTECTION, instanceId, input)) === 'alreadyRunning') {
        throw new HvrError('CONFLICT', `${instanceId} is already running; wait for it to finish.`, { instanceId });
    }
    return accepted(request, jobId, instanceId);
}

export async function replicationProtectedItem(
    request: HttpRequest,
    context: InvocationContext,
): Promise<HttpResponseInit> {
    const vmId = vmIdParam(request);
    switch (request.method) {
        case 'GET': {
            const scope = stateScope();
            const item = await getProtectedItem(scope, vmId);
            if (!item) throw new HvrError('NOT_FOUND', `VM ${vmId} is not protected.`);
            const [shown] = await withRepairState(scope, [item], ports().clock.now());
            const presented = presentItem(shown!, ports().clock.now());
            const points = await listRecoveryPoints(scope, vmId);
            const storage = pointStorage(
                points,
                (await listReplicaDisks(scope, vmId)).map((r) => r.disk),
            );
            presented.properties.lastCleanRecoveryPointId = latestCleanPoint(points)?.recoveryPointId ?? null;
            presented.properties.recoveryPointBytesHeld = storage.bytesHeld;
            return jsonResponse(200, presented);
        }
        case 'PUT':
            return enableProtection(request, context, vmId);
        case 'DELETE':
            return disableProtection(request, context, vmId);
        default:
            throw new HvrError('VALIDATION_FAILED', `Method ${request.method} is not supported here.`);
    }
}

/** Whether the app registers the resync orchestration (built separately; the worker loads every file). */
export function resyncOrchestrationAvailable(): boolean {
    try {
        require.resolve('../orchestrations/resync');
        return true;
    } catch {
        return false;
    }
}

export async function resyncProtectedItem(request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
    const vmId = vmIdParam(request);
    const scope = stateScope();
    const item = await getProtectedItem(scope, vmId);
    if (!item) throw new HvrError('NOT_FOUND', `VM ${vmId} is not protected.`);
    if (item.protectionState !== 'Protected') {
        throw new HvrError(
            'CONFLICT',
            `VM ${vmId} is ${item.protectionStateDescription.toLowerCase()}; only a protected VM can be resynchronized.`,
        );
    }
    const at = ports().clock.now().toISOString();
    if (resyncOrchestrationAvailable()) {
        const client = df.getClient(context);
        const instanceId = instanceIds.resync(vmId);
        if (await isActive(client, instanceId)) {
            return jsonResponse(202, { instanceId, alreadyRunning: true });
        }
        const input = {
            vmId,
            siteId: item.siteId,
            reason: 'OperatorRequested',
            requestedAt: at,
            requestedBy: requesterOf(request),
        };
        if ((await startOnce(client, RESYNC_ORCHESTRATION, instanceId, input)) === 'alreadyRunning') {
            return jsonResponse(202, { instanceId, alreadyRunning: true });
        }
        return jsonResponse(202, { instanceId, resynchronizationState: 'ResynchronizationInitiated' });
    }
    await updateProtectedItem(
        scope,
        vmId,
        () => ({ resynchronizationState: 'ResynchronizationRequired', resyncReason: 'OperatorRequested' }),
        at,
    );
    return jsonResponse(202, {
        resynchronizationState: 'ResynchronizationRequired',
        resyncReason: 'OperatorRequested',
    });
}

export async function protectedItemRecoveryPoints(request: HttpRequest): Promise<HttpResponseInit> {
    const vmId = vmIdParam(request);
    const scope = stateScope();
    await requireProtectedItem(vmId, scope);
    const points = await listRecoveryPoints(scope, vmId);
    const storage = pointStorage(
        points,
        (await listReplicaDisks(scope, vmId)).map((r) => r.disk),
    );
    return jsonResponse(200, {
        lastCleanRecoveryPointId: latestCleanPoint(points)?.recoveryPointId ?? null,
        bytesHeld: storage.bytesHeld,
        fullCopyBytes: storage.fullCopyBytes,
        value: points.map((p) => ({
            name: p.recoveryPointId,
            properties: {
                recoveryPointTime: p.capturedAt,
                recoveryPointType: p.consistency,
                cycleId: p.cycleId,
                disks: p.disks,
                changedBytes: p.changedBytes ?? null,
                uniqueBytes: storage.uniqueBytes[p.recoveryPointId] ?? 0,
                churn: p.churn ?? null,
                holdUntil: p.holdUntil ?? null,
                legalHold: p.legalHold ?? false,
                immutability: p.immutability ?? 'None',
            },
        })),
    });
}

/** A whole-number query parameter within bounds (VALIDATION_FAILED naming it otherwise). */
function boundedQuery(request: HttpRequest, name: string, fallback: number, min: number, max: number): number {
    const raw = request.query.get(name);
    if (raw === null) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
        throw new HvrError('VALIDATION_FAILED', `${name} must be a whole number from ${min} to ${max}; got "${raw}".`);
    }
    return value;
}

/**
 * RPO over the last `hours` (1–24, default 24): the samples the monitor recorded at each wake, oldest first, and
 * the RPO now (the chart's last point; null when it is unknown).
 */
export async function protectedItemRpoHistory(request: HttpRequest): Promise<HttpResponseInit> {
    const vmId = vmIdParam(request);
    const hours = boundedQuery(request, 'hours', 24, 1, 24);
    const scope = stateScope();
    const item = await requireProtectedItem(vmId, scope);
    const now = ports().clock.now();
    const since = new Date(now.getTime() - hours * 3600_000);
    return jsonResponse(200, {
        since: since.toISOString(),
        until: now.toISOString(),
        rpoSecondsNow: currentRpoSeconds(item, now),
        value: await listRpoSamples(scope, vmId, since),
    });
}

/**
 * The VM's replica disks as the merge keeps them: size, state, logs and bytes applied, the newest data's capture
 * time (the description the VM was enabled with is the item's `disks`).
 */
export async function protectedItemReplicaDisks(request: HttpRequest): Promise<HttpResponseInit> {
    const vmId = vmIdParam(request);
    const scope = stateScope();
    await requireProtectedItem(vmId, scope);
    const rows = await listReplicaDisks(scope, vmId);
    return jsonResponse(200, {
        value: rows.map(({ disk }) => ({
            name: disk.diskId,
            properties: {
                virtualSize: disk.virtualSize,
                state: disk.state,
                logsApplied: disk.sequence,
                appliedBytes: disk.appliedBytes,
                repairing: disk.applyingSequence !== undefined && disk.applyingSequence > disk.sequence,
                ...(disk.lastAppliedAt !== undefined ? { lastAppliedAt: disk.lastAppliedAt } : {}),
                ...(disk.lastCapturedAt !== undefined ? { lastCapturedAt: disk.lastCapturedAt } : {}),
                ...(disk.resyncReason !== undefined ? { resyncReason: disk.resyncReason } : {}),
            },
        })),
    });
}

/** The VM's events, newest first (`top` 1–1000, default 100), kept 72 hours. */
export async function protectedItemEvents(request: HttpRequest): Promise<HttpResponseInit> {
    const vmId = vmIdParam(request);
    const top = boundedQuery(request, 'top', 100, 1, 1000);
    const scope = stateScope();
    await requireProtectedItem(vmId, scope);
    const events = await listEvents(scope, { vmId, top });
    return jsonResponse(200, { value: events.map(({ vmId: _vmId, ...event }) => event) });
}

/** Counts per health, and the items that need attention with their reasons. */
export async function replicationHealthSummary(_request: HttpRequest): Promise<HttpResponseInit> {
    const scope = stateScope();
    const now = ports().clock.now();
    const items = await listProtectedItemsAsTheyAre(scope, {}, now);
    const counts = { Normal: 0, Warning: 0, Critical: 0 };
    for (const item of items) counts[item.replicationHealth] += 1;
    return jsonResponse(200, {
        total: items.length,
        replicationHealth: counts,
        items: items
            .filter((i) => i.replicationHealth !== 'Normal')
            .map((i) => ({
                vmId: i.vmId,
                replicationHealth: i.replicationHealth,
                healthReasons: i.healthReasons,
                rpoSeconds: currentRpoSeconds(i, now),
            })),
    });
}

const durableClient = df.input.durableClient();

/** Function keys, or none behind App Service authentication (apiCaller.ts). */
const API_AUTH_LEVEL = apiAuthLevel();

app.http('apiReplicationProtectedItems', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems',
    handler: withErrors(listReplicationProtectedItems),
});
app.http('apiReplicationProtectedItem', {
    methods: ['GET', 'PUT', 'DELETE'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}',
    extraInputs: [durableClient],
    handler: withErrors(replicationProtectedItem),
});
app.http('apiResyncProtectedItem', {
    methods: ['POST'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}/resync',
    extraInputs: [durableClient],
    handler: withErrors(resyncProtectedItem),
});
app.http('apiProtectedItemRecoveryPoints', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}/recoveryPoints',
    handler: withErrors(protectedItemRecoveryPoints),
});
app.http('apiProtectedItemRpoHistory', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}/rpoHistory',
    handler: withErrors(protectedItemRpoHistory),
});
app.http('apiProtectedItemReplicaDisks', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}/replicaDisks',
    handler: withErrors(protectedItemReplicaDisks),
});
app.http('apiProtectedItemEvents', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationProtectedItems/{vmId}/events',
    handler: withErrors(protectedItemEvents),
});
app.http('apiReplicationHealth', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationHealth',
    handler: withErrors(replicationHealthSummary),
});
