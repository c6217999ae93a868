import { RestError } from '@azure/core-rest-pipeline';
import { HvrError } from '../errors';
import { listDrills } from '../state/drills';
import { getProtectedItem } from '../state/protectedItems';
import {
    deleteRecoveryPoint,
    listRecoveryPointRows,
    RecoveryPoint,
    RecoveryPointRow,
    replaceRecoveryPoint,
} from '../state/recoveryPoints';
import { deadline } from '../storage/deadline';
import { decodeRanges, encodeRanges, rangeBytes, unionRanges } from './byteRanges';
import { assertDeletable, holdOf, protectSnapshots, RecoveryPointDeps } from './pointProtection';
import { replicaPageBlob } from './replicaDisk';
import { planRetention, RetentionPolicy, tiersOf } from './retentionSchedule';

/** What one sweep of a VM did. */
export interface SweepResult {
    vmId: string;
    removed: RecoveryPoint[];
    /** Points the schedule would drop but that stay: in use, held, or the last clean point. */
    protectedIds: string[];
    /** Points whose removal the storage refused (an immutability policy), left in place. */
    refused: { recoveryPointId: string; reason: string }[];
}

/** Cycle ids of the points a drill or failover of the VM is using (until its cleanup or commit). */
async function pointsInUse(deps: RecoveryPointDeps, vmId: string): Promise<Set<string>> {
    const inUse = new Set<string>();
    for (const drill of await listDrills(deps.scope, vmId)) if (!drill.cleanedUp) inUse.add(drill.cycleId);
    const item = await getProtectedItem(deps.scope, vmId);
    const failoverPoint = item?.failoverRecoveryPointId;
    if (failoverPoint !== undefined) inUse.add(failoverPoint.slice(vmId.length + 1));
    return inUse;
}

/** The newest clean point before each suspicious one: what a failover after an attack restores. */
export function lastCleanBeforeSuspicious(newestFirst: readonly RecoveryPoint[]): Set<string> {
    const kept = new Set<string>();
    for (let i = 0; i < newestFirst.length; i++) {
        if (!newestFirst[i]!.churn?.suspicious) continue;
        const clean = newestFirst.slice(i + 1).find((p) => !p.churn?.suspicious);
        if (clean) kept.add(clean.cycleId);
    }
    return kept;
}

/**
 * One pass of retention over a VM's points: the schedule's verdict (retentionSchedule.planRetention) minus every
 * protected point, then each removal in steps that a crash can resume: (1) the row is marked `pruningSince`
 * (ETag): from then on no one is offered the point; (2) drills are read again, and a point a drill picked
 * meanwhile is unmarked and kept; (3) its changed ranges merge into the next newer point (a union: repeating it
 * changes nothing), so the held bytes stay right; (4) its snapshots go; (5) the row goes. A later sweep finds a
 * marked row and carries on from wherever the last one stopped. Oldest first, so changes flow forward.
 */
export async function sweepRecoveryPoints(
    deps: RecoveryPointDeps,
    vmId: string,
    retention: RetentionPolicy,
): Promise<SweepResult> {
    const now = deps.clock.now();
    const rows = await listRecoveryPointRows(deps.scope, vmId);
    const live = rows.filter((r) => r.point.pruningSince === undefined).map((r) => r.point);
    const inUse = await pointsInUse(deps, vmId);
    const protectedIds = new Set<string>([...inUse, ...lastCleanBeforeSuspicious(live)]);
    for (const r of rows) if (holdOf(r.point, now)) protectedIds.add(r.point.cycleId);
    if (deps.immutability && deps.immutability !== 'None') {
        for (const r of rows) {
            if (holdOf(r.point, now) && r.point.immutability === undefined) await protectSnapshots(deps, r.point);
        }
    }
    const plan = planRetention(live, now, tiersOf(retention), protectedIds);
    const doomed = new Set(plan.prune.map((p) => p.cycleId));
    for (const r of rows) if (r.point.pruningSince !== undefined) doomed.add(r.point.cycleId);

    const result: SweepResult = { vmId, removed: [], protectedIds: [], refused: [] };
    for (const id of protectedIds) if (live.some((p) => p.cycleId === id)) result.protectedIds.push(id);
    const oldestFirst = [...rows].reverse();
    for (const row of oldestFirst) {
        if (!doomed.has(row.point.cycleId)) continue;
        if (protectedIds.has(row.point.cycleId)) {
            // Marked by an earlier sweep, protected since (a hold set, a drill started): it stays.
            if (row.point.pruningSince !== undefined) await unmark(deps, row);
            continue;
        }
        const outcome = await removePoint(deps, row);
        if (outcome.removed) result.removed.push(row.point);
        else if (outcome.refused)
            result.refused.push({ recoveryPointId: row.point.recoveryPointId, reason: outcome.refused });
    }
    return result;
}

/** The sweep's removal, as the schedule says; the point list is what retention removed. */
export async function pruneRecoveryPoints(
    deps: RecoveryPointDeps,
    vmId: string,
    retention: RetentionPolicy,
): Promise<RecoveryPoint[]> {
    return (await sweepRecoveryPoints(deps, vmId, retention)).removed;
}

async function unmark(deps: RecoveryPointDeps, row: RecoveryPointRow): Promise<void> {
    const point = { ...row.point };
    delete point.pruningSince;
    try {
        await replaceRecoveryPoint(deps.scope, { point, etag: row.etag });
    } catch (err) {
        if (!(err instanceof HvrError && err.code === 'CONCURRENT_UPDATE')) throw err;
    }
}

/**
 * Removes one point, refusing a held one (PREREQUISITE_FAILED: the app never deletes a point under a legal hold
 * or before its minimum retention, whoever asks). The steps are those of `sweepRecoveryPoints`.
 */
export async function removePoint(
    deps: RecoveryPointDeps,
    row: RecoveryPointRow,
): Promise<{ removed: boolean; refused?: string }> {
    assertDeletable(row.point, deps.clock.now());
    let marked = row;
    if (row.point.pruningSince === undefined) {
        const point = { ...row.point, pruningSince: deps.clock.now().toISOString() };
        try {
            await replaceRecoveryPoint(deps.scope, { point, etag: row.etag });
        } catch (err) {
            // Someone changed the point (a hold, another sweep): the next sweep decides again.
            if (err instanceof HvrError && err.code === 'CONCURRENT_UPDATE') return { removed: false };
            throw err;
        }
        const fresh = (await listRecoveryPointRows(deps.scope, row.point.vmId)).find(
            (r) => r.point.cycleId === row.point.cycleId,
        );
        if (!fresh) return { removed: false };
        marked = fresh;
        // A drill may have chosen the point between the sweep's read and the mark.
        if ((await pointsInUse(deps, row.point.vmId)).has(row.point.cycleId)) {
            await unmark(deps, marked);
            return { removed: false };
        }
    }
    await mergeChangesForward(deps, marked.point);
    for (const s of Object.values(marked.point.disks)) {
        try {
            await replicaPageBlob(deps.scope.conn.blob, s.blobName)
                .withSnapshot(s.snapshot)
                .deleteIfExists({ abortSignal: deadline(deps.callTimeoutMs, deps.signal) });
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 404) continue;
            if (err instanceof RestError && (err.statusCode === 409 || err.statusCode === 403)) {
                // An immutability policy the storage enforces outlives the app's view of it: keep the point.
                await unmark(deps, marked);
                return {
                    removed: false,
                    refused: `storage refused to delete snapshot ${s.snapshot}: ${err.code ?? err.statusCode}`,
                };
            }
            throw err;
        }
    }
    await deleteRecoveryPoint(deps.scope, marked.point.vmId, marked.point.cycleId);
    return { removed: true };
}

/** Unions the point's changed ranges into the next newer live point (the one whose snapshot now holds them). */
async function mergeChangesForward(deps: RecoveryPointDeps, point: RecoveryPoint): Promise<void> {
    if (!point.changes) return;
    for (let attempt = 1; attempt <= 8; attempt++) {
        const rows = await listRecoveryPointRows(deps.scope, point.vmId);
        const newer = rows
            .filter(
                (r) =>
                    r.point.pruningSince === undefined && Date.parse(r.point.capturedAt) > Date.parse(point.capturedAt),
            )
            .pop();
        if (!newer) return;
        const changes: Record<string, string> = { ...(newer.point.changes ?? {}) };
        const budget = Math.max(256, Math.floor(28_000 / Math.max(1, Object.keys(newer.point.disks).length)));
        let changedBytes = 0;
        for (const diskId of Object.keys(newer.point.disks)) {
            const merged = unionRanges(decodeRanges(changes[diskId]), decodeRanges(point.changes[diskId]));
            changes[diskId] = encodeRanges(merged, budget);
            changedBytes += rangeBytes(decodeRanges(changes[diskId]));
        }
        try {
            await replaceRecoveryPoint(deps.scope, { ...newer, point: { ...newer.point, changes, changedBytes } });
            return;
        } catch (err) {
            if (!(err instanceof HvrError && err.code === 'CONCURRENT_UPDATE') || attempt === 8) throw err;
        }
    }
}
