import { RestError } from '@azure/core-rest-pipeline';
import { TableEntity } from '@azure/data-tables';
import { HvrError } from '../errors';
import { PlanGroup, PlanOperation, PlanRecoveryPoint, RecoveryPlanDefinition } from '../plans/recoveryPlan';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from './tables';

export const RECOVERY_PLANS_TABLE = 'RecoveryPlans';
const ROW = 'plan';

/** Where the plan's operations stand: the latest run, and the steps it finished (kept across its retries). */
export interface RecoveryPlanRun {
    operation: PlanOperation;
    /** The run's latest job (a retry gets a new job and continues the run). */
    jobId: string;
    state: 'InProgress' | 'Succeeded' | 'Failed';
    /** Step keys (shared/plans/planSteps.ts) done by this run's jobs. */
    completedSteps: string[];
    startedAt: string;
    endedAt?: string;
}

export interface RecoveryPlan extends RecoveryPlanDefinition {
    createdAt: string;
    updatedAt: string;
    run?: RecoveryPlanRun;
    /** The row's ETag (If-Match of the API). */
    etag?: string;
}

function toEntity(plan: RecoveryPlan): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(plan.name),
        rowKey: ROW,
        name: plan.name,
        recoveryPoint: plan.recoveryPoint,
        groups: JSON.stringify(plan.groups),
        createdAt: plan.createdAt,
        updatedAt: plan.updatedAt,
    };
    if (plan.description !== undefined) entity.description = plan.description;
    if (plan.run !== undefined) entity.run = JSON.stringify(plan.run);
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(e: Record<string, unknown>): RecoveryPlan {
    const plan: RecoveryPlan = {
        name: e.name as string,
        recoveryPoint: e.recoveryPoint as PlanRecoveryPoint,
        groups: JSON.parse(e.groups as string) as PlanGroup[],
        createdAt: e.createdAt as string,
        updatedAt: e.updatedAt as string,
    };
    if (typeof e.description === 'string') plan.description = e.description;
    if (typeof e.run === 'string') plan.run = JSON.parse(e.run) as RecoveryPlanRun;
    if (typeof e.etag === 'string') plan.etag = e.etag;
    return plan;
}

export async function getRecoveryPlan(scope: StateScope, name: string): Promise<RecoveryPlan | undefined> {
    const table = await stateTable(scope, RECOVERY_PLANS_TABLE);
    const e = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(name), ROW);
    return e ? fromEntity(e) : undefined;
}

export async function listRecoveryPlans(scope: StateScope): Promise<RecoveryPlan[]> {
    const table = await stateTable(scope, RECOVERY_PLANS_TABLE);
    const plans: RecoveryPlan[] = [];
    for await (const e of table.listEntities<Record<string, unknown>>({ abortSignal: deadline() })) {
        plans.push(fromEntity(e));
    }
    return plans.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Creates the plan (`{ create: true }`: CONFLICT when one exists) or replaces the version `etag` names
 * (CONCURRENT_UPDATE when the row changed since).
 */
export async function putRecoveryPlan(
    scope: StateScope,
    plan: RecoveryPlan,
    condition: { etag: string } | { create: true },
): Promise<RecoveryPlan> {
    const table = await stateTable(scope, RECOVERY_PLANS_TABLE);
    const { etag: _etag, ...stored } = plan;
    try {
        const response =
            'create' in condition
                ? await table.createEntity(toEntity(stored), { abortSignal: deadline() })
                : await table.updateEntity(toEntity(stored), 'Replace', {
                      etag: condition.etag,
                      abortSignal: deadline(),
                  });
        return { ...stored, ...(response.etag !== undefined ? { etag: response.etag } : {}) };
    } catch (err) {
        throw mapTableError(err, `Recovery plan ${plan.name}`);
    }
}

/**
 * Read-modify-write of the plan's run under the row's ETag, retried when another writer got there first.
 * `change` returns the new run, or undefined to write nothing. NOT_FOUND when the plan is gone.
 */
export async function updateRecoveryPlanRun(
    scope: StateScope,
    name: string,
    change: (plan: RecoveryPlan) => RecoveryPlanRun | undefined,
    at: string,
): Promise<{ plan: RecoveryPlan; changed: boolean }> {
    const table = await stateTable(scope, RECOVERY_PLANS_TABLE);
    for (let attempt = 1; ; attempt++) {
        const e = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(name), ROW);
        if (!e) throw new HvrError('NOT_FOUND', `Recovery plan ${name} does not exist.`, { name });
        const current = fromEntity(e);
        const run = change(current);
        if (run === undefined || JSON.stringify(run) === JSON.stringify(current.run)) {
            return { plan: current, changed: false };
        }
        const { etag: _etag, ...rest } = current;
        const next: RecoveryPlan = { ...rest, run, updatedAt: at };
        try {
            const response = await table.updateEntity(toEntity(next), 'Replace', {
                etag: e.etag,
                abortSignal: deadline(),
            });
            return {
                plan: { ...next, ...(response.etag !== undefined ? { etag: response.etag } : {}) },
                changed: true,
            };
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 412 && attempt < 8) continue;
            throw mapTableError(err, `Recovery plan ${name}`);
        }
    }
}

/** Deletes the version `etag` names (or any version without one); false when there is none. */
export async function deleteRecoveryPlan(scope: StateScope, name: string, etag?: string): Promise<boolean> {
    const table = await stateTable(scope, RECOVERY_PLANS_TABLE);
    try {
        await table.deleteEntity(encodeKey(name), ROW, { abortSignal: deadline(), ...(etag ? { etag } : {}) });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw mapTableError(err, `Recovery plan ${name}`);
    }
}
