import { RestError } from '@azure/core-rest-pipeline';
import { HvrError } from '../errors';
import { ResyncReason } from '../lifecycle/instances';
import { systemClock } from '../ports';
import { REPLICAS_CONTAINER } from '../replica/logBlob';
import { replicaPageBlob } from '../replica/replicaDisk';
import { getReplicaDisk, listReplicaDisks, updateReplicaDisk } from '../state/disks';
import { StateScope, updateProtectedItem } from '../state/protectedItems';
import {
    createOrReadRecoveryPoint,
    deleteRecoveryPoint,
    DiskSnapshot,
    getRecoveryPoint,
    listRecoveryPoints,
    RecoveryPoint,
    recoveryPointId,
    unclaimedSnapshots,
} from '../state/recoveryPoints';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';
import { invalidateDigestIndex, rotateDigestIndex } from './digestIndex';
import { replicaDigestBlobs } from './manifestPublication';
import { readOnlyUrl } from '../storage/readOnlyUrl';
import { getResyncRun, listResyncRuns, requireRun, ResyncDiskProgress, ResyncRun, saveResyncRun } from './runs';

// The replica side of a resync (docs/resync.md): protection snapshots before the provider writes, verification
// that the merge applied the resync logs, the new baseline, and the rollback that restores the snapshots.
// Progress is recorded in ResyncRuns (./runs), so a retried activity skips what it finished.

/** The recovery point recorded when a resync completes is keyed by this cycle id. */
export function resyncCycleId(resyncId: string): string {
    return `resync-${resyncId}`;
}

function isNotFound(err: unknown): boolean {
    return err instanceof RestError && err.statusCode === 404;
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
        const outcome = await createOrReadRecoveryPoint(scope, point);
        if (!outcome.created) {
            const winner = outcome.winner!;
            for (const s of unclaimedSnapshots(snapshots, winner))
                await deleteSnapshot(scope.conn, s.blobName, s.snapshot);
            point = winner;
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
            await rotateDigestIndex(replicaDigestBlobs(scope.conn, input.vmId, diskId));
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
        await invalidateDigestIndex(replicaDigestBlobs(scope.conn, run.vmId, diskId), undefined, disk.baseSequence);
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
