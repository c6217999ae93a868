/* eslint-disable no-restricted-imports -- activities' storage adapter (SAS signing needs the SDK's SAS helpers);
   the orchestrator in orchestrations/resync.ts imports none of this file's I/O, only its activities' handles. */
import { RestError } from '@azure/core-rest-pipeline';
import {
    BlobSASPermissions,
    generateBlobSASQueryParameters,
    SASProtocol,
    StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { TableEntity } from '@azure/data-tables';
import { HvrError } from '../../shared/errors';
import { ResyncReason } from '../../shared/lifecycle/instances';
import { systemClock } from '../../shared/ports';
import { REPLICAS_CONTAINER } from '../../shared/replica/logBlob';
import { replicaPageBlob } from '../../shared/replica/replicaDisk';
import { nodeCountAt } from '../../shared/resync/digest';
import {
    DigestIndex,
    DiskBlobs,
    invalidateDigestIndex,
    refreshDigestIndex,
    rotateDigestIndex,
} from '../../shared/resync/digestIndex';
import { decodeDigestRequest } from '../../shared/resync/manifest';
import { getReplicaDisk, listReplicaDisks, updateReplicaDisk } from '../../shared/state/disks';
import { StateScope, stateTable, updateProtectedItem } from '../../shared/state/protectedItems';
import {
    createRecoveryPoint,
    deleteRecoveryPoint,
    DiskSnapshot,
    getRecoveryPoint,
    listRecoveryPoints,
    RecoveryPoint,
    recoveryPointId,
} from '../../shared/state/recoveryPoints';
import { StorageConnection } from '../../shared/storage/connections';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from '../../shared/state/tables';
import { deadline } from '../../shared/storage/deadline';

/** One row per resync (partition = VM, row = resync id): what each disk has done, so a retried activity skips it. */
export const RESYNC_RUNS_TABLE = 'ResyncRuns';

/** Digest manifests for providers: `{vmId}/{resyncId}/{diskId}/{round}.manifest`, read through a read-only SAS. */
export const RESYNC_MANIFESTS_CONTAINER = 'resync-manifests';

/** How long a manifest URL stays readable (a provider reads it once, soon after StartResync). */
export const MANIFEST_SAS_MINUTES = 120;

/** The recovery point recorded when a resync completes is keyed by this cycle id. */
export function resyncCycleId(resyncId: string): string {
    return `resync-${resyncId}`;
}

export function manifestBlobName(vmId: string, resyncId: string, diskId: string, round: number): string {
    return `${vmId}/${resyncId}/${diskId}/${round}.manifest`;
}

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

async function listResyncRuns(scope: StateScope, vmId: string): Promise<ResyncRun[]> {
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

function diskBlobs(conn: StorageConnection, vmId: string, diskId: string): DiskBlobs {
    return { container: conn.blob.getContainerClient(REPLICAS_CONTAINER), vmId, diskId };
}

function isNotFound(err: unknown): boolean {
    return err instanceof RestError && err.statusCode === 404;
}

/** A read-only SAS URL for one blob (or one snapshot), valid in the storage service's time, not a test clock's. */
async function readOnlyUrl(
    conn: StorageConnection,
    containerName: string,
    blobName: string,
    minutes: number,
    snapshot?: string,
): Promise<{ url: string; expiresOn: string }> {
    const now = systemClock.now().getTime();
    const startsOn = new Date(Math.floor((now - 5 * 60_000) / 1000) * 1000);
    const expiresOn = new Date(Math.floor((now + minutes * 60_000) / 1000) * 1000);
    const container = conn.blob.getContainerClient(containerName);
    const values = {
        containerName,
        blobName,
        permissions: BlobSASPermissions.parse('r'),
        startsOn,
        expiresOn,
        protocol: container.url.startsWith('https:') ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
        ...(snapshot !== undefined ? { snapshotTime: snapshot } : {}),
    };
    let sas: string;
    if (conn.accountKey) {
        const credential = new StorageSharedKeyCredential(conn.accountKey.accountName, conn.accountKey.accountKey);
        sas = generateBlobSASQueryParameters(values, credential).toString();
    } else {
        const key = await conn.blob.getUserDelegationKey(startsOn, expiresOn, { abortSignal: deadline() });
        sas = generateBlobSASQueryParameters(values, key, conn.blob.accountName).toString();
    }
    const base = container.getBlobClient(blobName);
    const url = snapshot !== undefined ? base.withSnapshot(snapshot).url : base.url;
    return { url: `${url}${url.includes('?') ? '&' : '?'}${sas}`, expiresOn: expiresOn.toISOString() };
}

// ---- step 1: protect the replica ----------------------------------------------------------------------------

export interface ProtectedDisk {
    diskId: string;
    virtualSize: number;
    baseSequence: number;
}

/**
 * Marks every disk ResyncRequired (from now on only a resync log applies) and snapshots it, recording each
 * snapshot before the next disk, so a retry after a crash snapshots only the disks not yet done. A disk with a
 * log being applied right now is a recoverable CONCURRENT_UPDATE: the snapshot must hold whole logs only.
 * A resync of this VM left unfinished (its orchestration terminated) is rolled back first.
 */
export async function protectReplica(
    scope: StateScope,
    input: { vmId: string; resyncId: string; reason: ResyncReason; at: string },
): Promise<ProtectedDisk[]> {
    for (const other of await listResyncRuns(scope, input.vmId)) {
        if (other.resyncId !== input.resyncId && other.state === 'Running')
            await rollbackResync(scope, other, input.at);
    }
    const rows = await listReplicaDisks(scope, input.vmId);
    if (rows.length === 0) {
        throw new HvrError('REPLICA_NOT_FOUND', `VM ${input.vmId} has no replica disks to resynchronize.`);
    }
    const run: ResyncRun = (await getResyncRun(scope, input.vmId, input.resyncId)) ?? {
        vmId: input.vmId,
        resyncId: input.resyncId,
        reason: input.reason,
        startedAt: input.at,
        state: 'Running',
        disks: {},
    };
    if (run.state !== 'Running') {
        throw new HvrError('CONFLICT', `Resync ${input.resyncId} of VM ${input.vmId} has already ${run.state}.`);
    }
    for (const { disk } of rows) {
        if (run.disks[disk.diskId]?.snapshot !== undefined) continue;
        const row = await updateReplicaDisk(
            scope,
            disk.vmId,
            disk.diskId,
            (cur) =>
                cur.state === 'ResyncRequired'
                    ? undefined
                    : {
                          state: 'ResyncRequired',
                          resyncReason: input.reason,
                          resyncDetail: `Resynchronization ${input.resyncId} started.`,
                          resyncRequiredAt: input.at,
                      },
            input.at,
        );
        if (row.disk.applyingSequence !== undefined && row.disk.applyingSequence > row.disk.sequence) {
            throw new HvrError(
                'CONCURRENT_UPDATE',
                `Disk ${disk.diskId} of VM ${disk.vmId} is applying log ${row.disk.applyingSequence}; the replica is protected once it is done.`,
            );
        }
        const page = replicaPageBlob(scope.conn.blob, row.disk.blobName);
        const snap = await page.createSnapshot({ abortSignal: deadline() });
        const snapshot = snap.snapshot!;
        const props = await page.withSnapshot(snapshot).getProperties({ abortSignal: deadline() });
        if ((props.blobSequenceNumber ?? 0) !== row.disk.sequence) {
            await page.withSnapshot(snapshot).deleteIfExists({ abortSignal: deadline() });
            throw new HvrError(
                'CONCURRENT_UPDATE',
                `Replica ${row.disk.blobName} is at log ${props.blobSequenceNumber ?? 0} but its row says ${row.disk.sequence}; a merge is finishing.`,
            );
        }
        const progress: ResyncDiskProgress = {
            blobName: row.disk.blobName,
            virtualSize: row.disk.virtualSize,
            baseSequence: row.disk.sequence,
            snapshot,
        };
        if (row.disk.lastLogId !== undefined) progress.baseLogId = row.disk.lastLogId;
        if (row.disk.vhd2DataWriteGuid !== undefined) progress.baseVhd2DataWriteGuid = row.disk.vhd2DataWriteGuid;
        run.disks[disk.diskId] = progress;
        await saveResyncRun(scope, run);
    }
    return Object.entries(run.disks)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([diskId, d]) => ({ diskId, virtualSize: d.virtualSize, baseSequence: d.baseSequence }));
}

// ---- steps 2–3: target digests and manifests ----------------------------------------------------------------

async function requireRun(scope: StateScope, vmId: string, resyncId: string): Promise<ResyncRun> {
    const run = await getResyncRun(scope, vmId, resyncId);
    if (!run) throw new HvrError('NOT_FOUND', `Resync ${resyncId} of VM ${vmId} has no progress row.`);
    return run;
}

function requireDisk(run: ResyncRun, diskId: string): ResyncDiskProgress {
    const disk = run.disks[diskId];
    if (!disk) throw new HvrError('NOT_FOUND', `Resync ${run.resyncId} has no disk ${diskId}.`);
    return disk;
}

async function uploadManifest(conn: StorageConnection, blobName: string, bytes: Buffer): Promise<void> {
    const container = conn.blob.getContainerClient(RESYNC_MANIFESTS_CONTAINER);
    await container.createIfNotExists({ abortSignal: deadline() });
    // Deterministic bytes for a given index and round: a retry overwrites with the same content.
    await container.getBlockBlobClient(blobName).uploadData(bytes, { abortSignal: deadline() });
}

export type ManifestStep = { done: false; leavesHashed: number } | { done: true; manifestBytes: number };

/**
 * Brings the disk's digest index up to date and publishes the round-1 (coarsest level) manifest. The refresh is
 * incremental: the merge marks the ranges of every log before sealing it, so only the blocks written since the
 * last refresh are read (all of the replica's written ranges only when the index is new, rotated, invalidated by
 * a rollback, or missing a log's marker). `budgetBytes` bounds one call's replica reads; the caller calls again
 * until `done` (the refresh resumes from the index header).
 */
export async function publishRoundOneManifest(
    scope: StateScope,
    input: { vmId: string; resyncId: string; diskId: string; budgetBytes?: number },
): Promise<ManifestStep> {
    const run = await requireRun(scope, input.vmId, input.resyncId);
    const disk = requireDisk(run, input.diskId);
    if (disk.manifestBytes !== undefined) return { done: true, manifestBytes: disk.manifestBytes };
    const d = diskBlobs(scope.conn, input.vmId, input.diskId);
    const refreshed = await refreshDigestIndex(
        d,
        input.budgetBytes !== undefined ? { budgetBytes: input.budgetBytes } : {},
    );
    if (!refreshed.complete) return { done: false, leavesHashed: refreshed.leavesHashed };
    const index = await DigestIndex.open(d);
    if (!index || !index.isCurrent(disk.baseSequence) || index.header.appliedSequence !== disk.baseSequence) {
        throw new HvrError(
            'REPLICA_STATE_INVALID',
            `Replica ${disk.blobName} moved past log ${disk.baseSequence} during resync ${input.resyncId} (index at ${index?.header.appliedSequence ?? 'none'}).`,
        );
    }
    const bytes = await index.manifest(0, 1, [{ first: 0, count: nodeCountAt(index.geometry, 0) }]);
    await uploadManifest(scope.conn, manifestBlobName(input.vmId, input.resyncId, input.diskId, 1), bytes);
    disk.manifestBytes = bytes.length;
    await saveResyncRun(scope, run);
    return { done: true, manifestBytes: bytes.length };
}

/**
 * Answers a provider's digest request (`encodeDigestRequest`, base64) with the manifest of the requested nodes,
 * published as round `round`. RESYNC_REQUEST_INVALID (non-recoverable) for a request that does not fit the disk.
 */
export async function publishRequestedManifest(
    scope: StateScope,
    input: { vmId: string; resyncId: string; diskId: string; round: number; request: string },
): Promise<{ manifestBytes: number }> {
    const run = await requireRun(scope, input.vmId, input.resyncId);
    requireDisk(run, input.diskId);
    if (!Number.isInteger(input.round) || input.round < 2 || input.round > 64) {
        throw new HvrError('RESYNC_REQUEST_INVALID', `Digest request round must be 2–64, got ${input.round}.`);
    }
    const index = await DigestIndex.open(diskBlobs(scope.conn, input.vmId, input.diskId));
    if (!index) throw new HvrError('REPLICA_STATE_INVALID', `Disk ${input.diskId} has no digest index.`);
    const request = decodeDigestRequest(Buffer.from(input.request, 'base64'), index.geometry);
    const bytes = await index.manifest(request.level, input.round, request.ranges);
    await uploadManifest(scope.conn, manifestBlobName(input.vmId, input.resyncId, input.diskId, input.round), bytes);
    return { manifestBytes: bytes.length };
}

export interface ManifestLink {
    diskId: string;
    round: number;
    manifestUrl: string;
    manifestExpiresOn: string;
}

/** Read-only SAS URLs for the named manifests. */
export async function manifestLinks(
    conn: StorageConnection,
    vmId: string,
    resyncId: string,
    wanted: readonly { diskId: string; round: number }[],
): Promise<ManifestLink[]> {
    const out: ManifestLink[] = [];
    for (const w of wanted) {
        const blobName = manifestBlobName(vmId, resyncId, w.diskId, w.round);
        const { url, expiresOn } = await readOnlyUrl(conn, RESYNC_MANIFESTS_CONTAINER, blobName, MANIFEST_SAS_MINUTES);
        out.push({ diskId: w.diskId, round: w.round, manifestUrl: url, manifestExpiresOn: expiresOn });
    }
    return out;
}

// ---- step 5: verify, new baseline ---------------------------------------------------------------------------

/**
 * Whether the merge applied the resync log on every disk: the row is past the protected sequence, Replicating
 * again (a resync log clears ResyncRequired), with no write intent left. Not yet: a recoverable TRANSIENT, so
 * the caller retries on the schedule while the merge catches up.
 */
export async function verifyResyncApplied(
    scope: StateScope,
    input: { vmId: string; resyncId: string },
): Promise<Record<string, number>> {
    const run = await requireRun(scope, input.vmId, input.resyncId);
    const applied: Record<string, number> = {};
    const pending: string[] = [];
    for (const [diskId, disk] of Object.entries(run.disks)) {
        const row = await getReplicaDisk(scope, input.vmId, diskId);
        if (!row) throw new HvrError('REPLICA_NOT_FOUND', `Disk ${diskId} of VM ${input.vmId} has no row.`);
        const ok =
            row.disk.sequence > disk.baseSequence &&
            row.disk.state === 'Replicating' &&
            (row.disk.applyingSequence === undefined || row.disk.applyingSequence <= row.disk.sequence);
        if (ok) applied[diskId] = row.disk.sequence;
        else pending.push(`${diskId} at log ${row.disk.sequence} (${row.disk.state}), needs ${disk.baseSequence + 1}`);
    }
    if (pending.length > 0) {
        throw new HvrError('TRANSIENT', `Resync log not applied yet: ${pending.join('; ')}.`);
    }
    return applied;
}

async function deleteSnapshot(conn: StorageConnection, blobName: string, snapshot: string): Promise<void> {
    try {
        await replicaPageBlob(conn.blob, blobName).withSnapshot(snapshot).deleteIfExists({ abortSignal: deadline() });
    } catch (err) {
        if (!isNotFound(err)) throw err;
    }
}

/**
 * The new baseline: a recovery point of the resynchronized disks (created once, keyed by the resync), then the
 * points from before removed (row first, then snapshots: they no longer describe the replica's chain), the
 * protection snapshots deleted, and each digest index rotated to a seed the provider has not seen.
 */
export async function completeResync(
    scope: StateScope,
    input: { vmId: string; resyncId: string; capturedAt: string; at: string },
): Promise<{ recoveryPointId: string; capturedAt: string; removedPoints: number }> {
    const run = await requireRun(scope, input.vmId, input.resyncId);
    const cycleId = resyncCycleId(input.resyncId);
    let point = await getRecoveryPoint(scope, input.vmId, cycleId);
    if (!point) {
        const snapshots: Record<string, DiskSnapshot> = {};
        for (const diskId of Object.keys(run.disks).sort()) {
            const row = await getReplicaDisk(scope, input.vmId, diskId);
            if (!row) throw new HvrError('REPLICA_NOT_FOUND', `Disk ${diskId} of VM ${input.vmId} has no row.`);
            const snap = await replicaPageBlob(scope.conn.blob, row.disk.blobName).createSnapshot({
                abortSignal: deadline(),
            });
            snapshots[diskId] = { blobName: row.disk.blobName, snapshot: snap.snapshot!, sequence: row.disk.sequence };
        }
        point = {
            vmId: input.vmId,
            cycleId,
            recoveryPointId: recoveryPointId(input.vmId, cycleId),
            consistency: 'CrashConsistent',
            capturedAt: input.capturedAt,
            createdAt: input.at,
            disks: snapshots,
        } satisfies RecoveryPoint;
        if (!(await createRecoveryPoint(scope, point))) {
            for (const s of Object.values(snapshots)) await deleteSnapshot(scope.conn, s.blobName, s.snapshot);
            point = (await getRecoveryPoint(scope, input.vmId, cycleId))!;
        }
    }
    let removedPoints = 0;
    for (const old of await listRecoveryPoints(scope, input.vmId)) {
        if (old.cycleId === cycleId) continue;
        await deleteRecoveryPoint(scope, input.vmId, old.cycleId);
        for (const s of Object.values(old.disks)) await deleteSnapshot(scope.conn, s.blobName, s.snapshot);
        removedPoints++;
    }
    const baseline = point;
    // Written here rather than by the orchestrator's record: clearing resyncReason needs an undefined, which
    // does not survive the JSON an activity input travels as.
    try {
        await updateProtectedItem(
            scope,
            input.vmId,
            () => ({
                resynchronizationState: 'ResynchronizationCompleted',
                resyncReason: undefined,
                lastRecoveryPointId: baseline.recoveryPointId,
                lastRecoveryPointAt: baseline.capturedAt,
            }),
            input.at,
        );
    } catch (err) {
        if (!(err instanceof HvrError && err.code === 'NOT_FOUND')) throw err;
    }
    if (run.state === 'Running') {
        for (const [diskId, disk] of Object.entries(run.disks)) {
            if (disk.snapshot !== undefined) await deleteSnapshot(scope.conn, disk.blobName, disk.snapshot);
            await rotateDigestIndex(diskBlobs(scope.conn, input.vmId, diskId));
        }
        run.state = 'Completed';
        await saveResyncRun(scope, run);
    }
    return { recoveryPointId: point.recoveryPointId, capturedAt: point.capturedAt, removedPoints };
}

// ---- cancel or failure: rollback ----------------------------------------------------------------------------

const COPY_POLL_MS = 250;
const COPY_WAIT_MS = 60_000;

function copiedFrom(copySource: string | undefined, blobName: string, snapshot: string): boolean {
    if (!copySource) return false;
    const url = new URL(copySource);
    return decodeURIComponent(url.pathname).endsWith(`/${blobName}`) && url.searchParams.get('snapshot') === snapshot;
}

/**
 * Puts every disk back as it was protected: a server-side copy of the protection snapshot over the replica blob,
 * the blob's sequence number and the disk row reset to the snapshot's log, the digest index invalidated (the
 * copy wrote no dirty markers), the disk left ResyncRequired for the next window. Disks already restored are
 * skipped; a copy still pending after a minute is a recoverable TRANSIENT (the retry finds it and waits again).
 */
export async function rollbackResync(scope: StateScope, run: ResyncRun, at: string): Promise<string[]> {
    if (run.state !== 'Running') return [];
    const restored: string[] = [];
    for (const [diskId, disk] of Object.entries(run.disks).sort(([a], [b]) => a.localeCompare(b))) {
        if (disk.restored || disk.snapshot === undefined) continue;
        const replica = replicaPageBlob(scope.conn.blob, disk.blobName);
        let props = await replica.getProperties({ abortSignal: deadline() });
        if (!copiedFrom(props.copySource, disk.blobName, disk.snapshot) || props.copyStatus === 'failed') {
            const source = await readOnlyUrl(scope.conn, REPLICAS_CONTAINER, disk.blobName, 60, disk.snapshot);
            await replica.beginCopyFromURL(source.url, { abortSignal: deadline() });
        }
        const waitUntil = systemClock.now().getTime() + COPY_WAIT_MS;
        for (;;) {
            props = await replica.getProperties({ abortSignal: deadline() });
            if (props.copyStatus === 'success') break;
            if (props.copyStatus === 'failed' || props.copyStatus === 'aborted') {
                throw new HvrError('TRANSIENT', `Restoring ${disk.blobName}: copy ${props.copyStatus}.`);
            }
            if (systemClock.now().getTime() > waitUntil) {
                throw new HvrError(
                    'TRANSIENT',
                    `Restoring ${disk.blobName}: copy still ${props.copyStatus ?? 'pending'}.`,
                );
            }
            await new Promise((resolve) => setTimeout(resolve, COPY_POLL_MS));
        }
        await replica.updateSequenceNumber('update', disk.baseSequence, { abortSignal: deadline() });
        await updateReplicaDisk(
            scope,
            run.vmId,
            diskId,
            () => ({
                sequence: disk.baseSequence,
                lastLogId: disk.baseLogId,
                vhd2DataWriteGuid: disk.baseVhd2DataWriteGuid,
                applyingSequence: undefined,
                applyingLogId: undefined,
                state: 'ResyncRequired',
                resyncReason: run.reason,
                resyncDetail: `Resynchronization ${run.resyncId} was rolled back.`,
                resyncRequiredAt: at,
            }),
            at,
        );
        await invalidateDigestIndex(diskBlobs(scope.conn, run.vmId, diskId), undefined, disk.baseSequence);
        disk.restored = true;
        await saveResyncRun(scope, run);
        restored.push(diskId);
    }
    for (const disk of Object.values(run.disks)) {
        if (disk.snapshot !== undefined) await deleteSnapshot(scope.conn, disk.blobName, disk.snapshot);
    }
    run.state = 'RolledBack';
    await saveResyncRun(scope, run);
    return restored;
}

/** Rolls back resync `resyncId` of `vmId` if it is still running (nothing to do for a finished or unknown one). */
export async function rollbackResyncById(
    scope: StateScope,
    input: { vmId: string; resyncId: string; at: string },
): Promise<string[]> {
    const run = await getResyncRun(scope, input.vmId, input.resyncId);
    return run ? rollbackResync(scope, run, input.at) : [];
}
