import { RestError } from '@azure/core-rest-pipeline';
import { TableEntity } from '@azure/data-tables';
import { HvrError } from '../errors';
import { DrillState, FailoverKind } from '../failover/states';
import { FailoverResource } from '../failover/infrastructure';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import {
    assertEntityWithinLimits,
    createEntityIfAbsent,
    encodeKey,
    getEntityOrUndefined,
    mapTableError,
} from './tables';

export const DRILLS_TABLE = 'FailoverDrills';

/**
 * One test failover drill or failover of a VM: what it restored, what it created, and how it ended. Resources are
 * recorded as they are created (and carry the drill's tags), so cleanup finds them even after a crash.
 */
export interface Drill {
    vmId: string;
    drillId: string;
    kind: FailoverKind;
    state: DrillState;
    jobId: string;
    recoveryPointId: string;
    cycleId: string;
    /** When the restored point was captured on-premises. */
    capturedAt: string;
    consistency: 'CrashConsistent' | 'AppConsistent';
    infrastructure: 'arm' | 'dryrun';
    /** Blobs in container `failover`. */
    failoverBlobs: string[];
    resources: FailoverResource[];
    /** The VM created in Azure (its ARM id). */
    virtualMachineId?: string;
    startedAt: string;
    completedAt?: string;
    cleanedUpAt?: string;
    /** Whether everything the drill created is gone. */
    cleanedUp: boolean;
    error?: { code: string; message: string };
    cleanupError?: { code: string; message: string };
    /** The VM created in Azure as it was built (change recovery point rebuilds it with other disks). */
    machine?: DrillMachine;
    /** Failover: seconds of writes the restored point lacks (0 for a planned failover: the VM was off). */
    rpoSeconds?: number;
    /** Failover: every point the VM in Azure ran from, oldest first (change recovery point appends). */
    recoveryPointHistory?: { recoveryPointId: string; appliedAt: string; jobId: string }[];
}

/** What rebuilding the drill's VM needs: its size and NICs, and the managed disk of each replicated disk. */
export interface DrillMachine {
    name: string;
    vmSize: string;
    osType: 'Windows' | 'Linux';
    generation: 1 | 2;
    nicIds: string[];
    /** In LUN order after the OS disk. */
    disks: { diskId: string; isOsDisk: boolean; resourceId: string; name: string }[];
}

const JSON_FIELDS = ['failoverBlobs', 'resources', 'error', 'cleanupError', 'recoveryPointHistory', 'machine'] as const;

function toEntity(drill: Drill): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(drill.vmId),
        rowKey: encodeKey(drill.drillId),
    };
    for (const [key, value] of Object.entries(drill)) {
        if (value === undefined) continue;
        entity[key] = (JSON_FIELDS as readonly string[]).includes(key) ? JSON.stringify(value) : value;
    }
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(entity: Record<string, unknown>): Drill {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(entity)) {
        if (['partitionKey', 'rowKey', 'etag', 'timestamp', 'odata.metadata'].includes(key)) continue;
        out[key] =
            (JSON_FIELDS as readonly string[]).includes(key) && typeof value === 'string' ? JSON.parse(value) : value;
    }
    return out as unknown as Drill;
}

/** Creates the drill; an existing one with the same id is returned as it is (a retried activity). */
export async function createDrill(scope: StateScope, drill: Drill): Promise<Drill> {
    const table = await stateTable(scope, DRILLS_TABLE);
    if (await createEntityIfAbsent(table, toEntity(drill), `Drill ${drill.drillId}`)) return drill;
    const existing = await getDrill(scope, drill.vmId, drill.drillId);
    if (!existing) throw new HvrError('CONFLICT', `Drill ${drill.drillId} exists but could not be read; retry.`);
    return existing;
}

export async function getDrill(scope: StateScope, vmId: string, drillId: string): Promise<Drill | undefined> {
    const table = await stateTable(scope, DRILLS_TABLE);
    const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), encodeKey(drillId));
    return entity ? fromEntity(entity) : undefined;
}

/** A VM's drills and failovers, newest first. */
export async function listDrills(scope: StateScope, vmId: string): Promise<Drill[]> {
    const table = await stateTable(scope, DRILLS_TABLE);
    const pk = encodeKey(vmId).replace(/'/g, "''");
    const drills: Drill[] = [];
    for await (const entity of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${pk}'` },
        abortSignal: deadline(),
    })) {
        drills.push(fromEntity(entity));
    }
    return drills.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.drillId.localeCompare(a.drillId));
}

/** Read-modify-write under the row's ETag, retried on a concurrent change. NOT_FOUND when the drill is absent. */
export async function updateDrill(
    scope: StateScope,
    vmId: string,
    drillId: string,
    change: (current: Drill) => Partial<Omit<Drill, 'vmId' | 'drillId'>>,
): Promise<Drill> {
    const table = await stateTable(scope, DRILLS_TABLE);
    for (let attempt = 1; ; attempt++) {
        const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), encodeKey(drillId));
        if (!entity) throw new HvrError('NOT_FOUND', `Drill ${drillId} of VM ${vmId} does not exist.`, { drillId });
        const current = fromEntity(entity);
        const next: Drill = { ...current, ...change(current) };
        if (JSON.stringify(next) === JSON.stringify(current)) return current;
        try {
            await table.updateEntity(toEntity(next), 'Replace', { etag: entity.etag, abortSignal: deadline() });
            return next;
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 412 && attempt < 8) continue;
            throw mapTableError(err, `Drill ${drillId}`);
        }
    }
}

/** Adds resources to the drill's record (ids compared case-insensitively, as ARM does). */
export function withResources(
    current: readonly FailoverResource[],
    added: readonly FailoverResource[],
): FailoverResource[] {
    const known = new Set(current.map((r) => r.id.toLowerCase()));
    return [...current, ...added.filter((r) => !known.has(r.id.toLowerCase()))];
}
