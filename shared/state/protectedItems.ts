import type { SuspiciousChurnMark } from '../replica/cleanPoint';
import { TableClient, TableEntity } from '@azure/data-tables';
import { RestError } from '@azure/core-rest-pipeline';
import { HvrError } from '../errors';
import { HealthReason, ReplicationHealth } from '../health';
import { ports } from '../ports';
import { StorageConnection } from '../storage/connections';
import { canonicalInstant } from '../storage/instants';
import { deadline } from '../storage/deadline';
import { VmDiskDescription } from '../supportMatrix';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError, tableFor } from './tables';

/** Where the lifecycle tables live: a storage connection and a name prefix (tests isolate with it). */
export interface StateScope {
    conn: StorageConnection;
    /** Letters and digits only; '' in production. */
    tablePrefix: string;
}

/** The scope of the ports (`ports().state()`: the storage port and the optional setting STATE_TABLE_PREFIX). */
export function stateScope(): StateScope {
    return ports().state();
}

/** A lifecycle table of the scope, created on first use. */
export function stateTable(scope: StateScope, baseName: string): Promise<TableClient> {
    return tableFor(scope.conn, `${scope.tablePrefix}${baseName}`);
}

/**
 * ASR's protection states (ReplicationProtectedItem.protectionState) that this service uses.
 * The description is what the portal shows.
 */
export const PROTECTION_STATES = {
    EnablingProtection: 'Enabling protection',
    EnablingFailed: 'Enabling protection failed',
    InitialReplicationInProgress: 'Waiting for initial replication to complete',
    InitialReplicationFailed: 'Initial replication failed',
    Protected: 'Protected',
    DisablingProtection: 'Disabling protection',
    DisablingFailed: 'Disabling protection failed',
    // Failover (shared/failover, orchestrations/failover.ts)
    PlannedFailoverInProgress: 'Planned failover in progress',
    UnplannedFailoverInProgress: 'Failover in progress',
    FailoverFailed: 'Failover failed',
    FailedOver: 'Failed over',
    /** Change recovery point (ASR's applyRecoveryPoint): the VM in Azure is rebuilt from another point. */
    ChangeRecoveryPointInProgress: 'Change recovery point in progress',
    CommittingFailover: 'Committing failover',
    FailoverCommitted: 'Failover committed',
    // Failback and re-protect (orchestrations/failback.ts, orchestrations/reprotect.ts)
    /** ASR's planned failover from Azure to on-premises. */
    FailbackInProgress: 'Planned failover from Azure in progress',
    FailedBack: 'Failed back to on-premises',
    /** ASR's reverse replication ("Re-protect"). */
    ReprotectInProgress: 'Re-protect in progress',
} as const;

export type ProtectionState = keyof typeof PROTECTION_STATES;

/** ASR's resynchronizationState. */
export type ResynchronizationState =
    | 'None'
    | 'ResynchronizationRequired'
    | 'ResynchronizationInitiated'
    | 'ResynchronizationCompleted'
    | 'ResynchronizationFailed';

/** A VM under protection (ASR's replication protected item). */
export interface ProtectedItem {
    vmId: string;
    siteId: string;
    vmName: string;
    generation: 1 | 2;
    policyName: string;
    disks: VmDiskDescription[];
    protectionState: ProtectionState;
    protectionStateDescription: string;
    resynchronizationState: ResynchronizationState;
    /** Why a resync is required (ResyncReason), when it is. */
    resyncReason?: string;
    replicationHealth: ReplicationHealth;
    healthReasons: HealthReason[];
    /** Seconds; absent until the monitor has measured it. */
    rpoSeconds?: number;
    /** capturedAt of the newest data applied to every disk. */
    lastCapturedAt?: string;
    lastRecoveryPointId?: string;
    lastRecoveryPointAt?: string;
    lastHeartbeatAt?: string;
    /** Per-disk percent during initial replication. */
    initialReplicationProgress?: Record<string, number>;
    /** The job currently acting on the item. */
    currentJobId?: string;
    /** ASR's testFailoverState (shared/failover/states.ts) and the portal's line for it. */
    testFailoverState?: string;
    testFailoverStateDescription?: string;
    /** The newest drill or failover of the VM (its record in FailoverDrills says whether it is still open). */
    currentDrillId?: string;
    lastSuccessfulTestFailoverTime?: string;
    /** The recovery point a failover used, and when it completed. */
    failoverRecoveryPointId?: string;
    lastSuccessfulFailoverTime?: string;
    /** When the VM last failed back to premises (a failback succeeded). */
    lastSuccessfulFailbackTime?: string;
    /** The newest recovery point the merge flagged as suspicious churn (shared/replica/cleanPoint.ts). */
    suspiciousChurn?: SuspiciousChurnMark;
    createdAt: string;
    updatedAt: string;
}

export const PROTECTED_ITEMS_TABLE = 'ProtectedItems';
const ROW = 'item';

const JSON_FIELDS = ['disks', 'healthReasons', 'initialReplicationProgress', 'suspiciousChurn'] as const;

/** Instants that reach the row through orchestrations, stored canonical (shared/storage/instants.ts). */
const INSTANT_FIELDS: readonly (keyof ProtectedItem)[] = [
    'lastCapturedAt',
    'lastRecoveryPointAt',
    'lastHeartbeatAt',
    'lastSuccessfulTestFailoverTime',
    'lastSuccessfulFailoverTime',
    'lastSuccessfulFailbackTime',
    'createdAt',
    'updatedAt',
];

function toEntity(item: ProtectedItem): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = { partitionKey: encodeKey(item.vmId), rowKey: ROW };
    for (const [key, value] of Object.entries(item)) {
        if (value === undefined) continue;
        entity[key] = (JSON_FIELDS as readonly string[]).includes(key)
            ? JSON.stringify(value)
            : typeof value === 'string' && (INSTANT_FIELDS as readonly string[]).includes(key)
              ? canonicalInstant(value)
              : value;
    }
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(entity: Record<string, unknown>): ProtectedItem {
    const item: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(entity)) {
        if (['partitionKey', 'rowKey', 'etag', 'timestamp', 'odata.metadata'].includes(key)) continue;
        item[key] =
            (JSON_FIELDS as readonly string[]).includes(key) && typeof value === 'string' ? JSON.parse(value) : value;
    }
    return item as unknown as ProtectedItem;
}

export async function getProtectedItem(scope: StateScope, vmId: string): Promise<ProtectedItem | undefined> {
    const table = await stateTable(scope, PROTECTED_ITEMS_TABLE);
    const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), ROW);
    return entity ? fromEntity(entity) : undefined;
}

/** Creates the item; CONFLICT if the VM already has one. */
export async function createProtectedItem(scope: StateScope, item: ProtectedItem): Promise<void> {
    const table = await stateTable(scope, PROTECTED_ITEMS_TABLE);
    try {
        await table.createEntity(toEntity(item), { abortSignal: deadline() });
    } catch (err) {
        throw mapTableError(err, `Protected item ${item.vmId}`);
    }
}

export async function listProtectedItems(
    scope: StateScope,
    filter: { siteId?: string } = {},
): Promise<ProtectedItem[]> {
    const table = await stateTable(scope, PROTECTED_ITEMS_TABLE);
    const items: ProtectedItem[] = [];
    const signal = deadline();
    for await (const entity of table.listEntities<Record<string, unknown>>({ abortSignal: signal })) {
        const item = fromEntity(entity);
        if (filter.siteId === undefined || item.siteId === filter.siteId) items.push(item);
    }
    return items.sort((a, b) => a.vmId.localeCompare(b.vmId));
}

/** Fields an update may change (identity stays). */
export type ProtectedItemChanges = Partial<Omit<ProtectedItem, 'vmId' | 'createdAt' | 'updatedAt'>>;

function differs(a: unknown, b: unknown): boolean {
    return JSON.stringify(a) !== JSON.stringify(b);
}

/**
 * Read-modify-write with the row's ETag, retried when another writer got there first. `change` sees the current
 * item and returns the fields to set (a field set to undefined is removed). Nothing is written when no field
 * changes. NOT_FOUND when the item does not exist.
 */
export async function updateProtectedItem(
    scope: StateScope,
    vmId: string,
    change: (current: ProtectedItem) => ProtectedItemChanges | undefined,
    at: string,
): Promise<{ item: ProtectedItem; changed: boolean }> {
    const table = await stateTable(scope, PROTECTED_ITEMS_TABLE);
    for (let attempt = 1; ; attempt++) {
        const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), ROW);
        if (!entity) throw new HvrError('NOT_FOUND', `VM ${vmId} is not protected (no protected item).`, { vmId });
        const current = fromEntity(entity);
        const changes = change(current) ?? {};
        const changedKeys = Object.keys(changes).filter((k) =>
            differs(current[k as keyof ProtectedItem], changes[k as keyof ProtectedItemChanges]),
        );
        if (changedKeys.length === 0) return { item: current, changed: false };
        const next = { ...current } as Record<string, unknown>;
        for (const key of changedKeys) next[key] = changes[key as keyof ProtectedItemChanges];
        next.updatedAt = at;
        const nextItem = next as unknown as ProtectedItem;
        try {
            await table.updateEntity(toEntity(nextItem), 'Replace', { etag: entity.etag, abortSignal: deadline() });
            return { item: nextItem, changed: true };
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 412 && attempt < 8) continue;
            throw mapTableError(err, `Protected item ${vmId}`);
        }
    }
}

export async function deleteProtectedItem(scope: StateScope, vmId: string): Promise<boolean> {
    const table = await stateTable(scope, PROTECTED_ITEMS_TABLE);
    try {
        await table.deleteEntity(encodeKey(vmId), ROW, { abortSignal: deadline() });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw mapTableError(err, `Protected item ${vmId}`);
    }
}
