import { TableEntity } from '@azure/data-tables';
import { HvrError } from '../errors';
import { ResyncReason } from '../lifecycle/instances';
import { StateScope, stateTable } from '../state/protectedItems';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from '../state/tables';
import { deadline } from '../storage/deadline';

/** One row per resync (partition = VM, row = resync id): what each disk has done, so a retried activity skips it. */
export const RESYNC_RUNS_TABLE = 'ResyncRuns';

/** Where one disk of a resync stands. Every field is set once, in this order. */
export interface ResyncDiskProgress {
    blobName: string;
    virtualSize: number;
    /** Logs applied when the replica was protected; the resync log is number baseSequence + 1. */
    baseSequence: number;
    baseLogId?: string;
    baseVhd2DataWriteGuid?: string;
    /** The protection snapshot (step 1): a rollback copies it back over the replica. */
    snapshot?: string;
    /** Bytes of the published round-1 manifest (step 2). */
    manifestBytes?: number;
    restored?: boolean;
}

export interface ResyncRun {
    vmId: string;
    resyncId: string;
    reason: ResyncReason;
    startedAt: string;
    state: 'Running' | 'Completed' | 'RolledBack';
    disks: Record<string, ResyncDiskProgress>;
}

function toEntity(run: ResyncRun): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(run.vmId),
        rowKey: encodeKey(run.resyncId),
        vmId: run.vmId,
        resyncId: run.resyncId,
        reason: run.reason,
        startedAt: run.startedAt,
        state: run.state,
        disks: JSON.stringify(run.disks),
    };
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(e: Record<string, unknown>): ResyncRun {
    return {
        vmId: e.vmId as string,
        resyncId: e.resyncId as string,
        reason: e.reason as ResyncReason,
        startedAt: e.startedAt as string,
        state: e.state as ResyncRun['state'],
        disks: JSON.parse(e.disks as string) as Record<string, ResyncDiskProgress>,
    };
}

export async function getResyncRun(scope: StateScope, vmId: string, resyncId: string): Promise<ResyncRun | undefined> {
    const table = await stateTable(scope, RESYNC_RUNS_TABLE);
    const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), encodeKey(resyncId));
    return entity ? fromEntity(entity) : undefined;
}

/** Only the resync's own orchestration writes its row, one activity at a time: a plain upsert is enough. */
export async function saveResyncRun(scope: StateScope, run: ResyncRun): Promise<void> {
    const table = await stateTable(scope, RESYNC_RUNS_TABLE);
    try {
        await table.upsertEntity(toEntity(run), 'Replace', { abortSignal: deadline() });
    } catch (err) {
        throw mapTableError(err, `Resync ${run.vmId}/${run.resyncId}`);
    }
}

/** Every resync of the VM on record, oldest or newest in no particular order. */
export async function listResyncRuns(scope: StateScope, vmId: string): Promise<ResyncRun[]> {
    const table = await stateTable(scope, RESYNC_RUNS_TABLE);
    const runs: ResyncRun[] = [];
    const filter = `PartitionKey eq '${encodeKey(vmId).replace(/'/g, "''")}'`;
    for await (const e of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter },
        abortSignal: deadline(),
    })) {
        runs.push(fromEntity(e));
    }
    return runs;
}

/** The resync's progress row; NOT_FOUND when it has none (the resync was never protected). */
export async function requireRun(scope: StateScope, vmId: string, resyncId: string): Promise<ResyncRun> {
    const run = await getResyncRun(scope, vmId, resyncId);
    if (!run) throw new HvrError('NOT_FOUND', `Resync ${resyncId} of VM ${vmId} has no progress row.`);
    return run;
}

/** One disk's progress in the run; NOT_FOUND for a disk the resync did not protect. */
export function requireDisk(run: ResyncRun, diskId: string): ResyncDiskProgress {
    const disk = run.disks[diskId];
    if (!disk) throw new HvrError('NOT_FOUND', `Resync ${run.resyncId} has no disk ${diskId}.`);
    return disk;
}
