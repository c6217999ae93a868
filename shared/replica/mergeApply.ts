import { RestError } from '@azure/core-rest-pipeline';
import { HvrError } from '../errors';
import { entryDataIsZero, HrlIndex, readHrlIndex, verifyHrlData } from '../hrl/reader';
import { bufferSource, ByteSource } from '../hrl/source';
import { ResyncReason } from '../lifecycle/instances';
import { compactDirtyMarkers, DIRTY_MARKER_COMPACT_EVERY_LOGS, DiskBlobs, markDirty } from '../resync/digestIndex';
import { listReplicaDisks, replaceReplicaDisk, ReplicaDiskRow, updateReplicaDisk } from '../state/disks';
import { openBlobSource } from '../storage/blobSource';
import { deadline } from '../storage/deadline';
import { applyPlanKey, applyPlannedWrites, planApplySteps } from './applyLog';
import { REPLICAS_CONTAINER } from './logBlob';
import { isHrlFormatError, refuse } from './mergeRefusal';
import { budgetOf, LogContext, MergeMetrics, MergeOutcome } from './mergeTypes';
import { isSequenceConditionFailure, ReplicaPageWriter } from './pageWriter';
import { ByteRange, decodeRanges, encodeRanges, unionRanges } from './byteRanges';
import { addMeasures, ChurnMeasure, ChurnSampler, EMPTY_MEASURE } from './churnSignal';
import { isCycleComplete, recordCycleIfComplete } from './recoveryPoints';
import { LogWrite, minimumPutPageCalls, PageWrite, planPageWrites, resolveLastWriterWins } from './writePlan';

function reasonForLogError(err: HvrError): ResyncReason {
    return err.code === 'HRL_NOT_CLOSED' ? 'LogNotClosed' : 'InvalidLog';
}

/** The log's writes for the planner; a data checksum of ~0 on a write under 16 MiB proves it is all zero. */
function logWrites(index: HrlIndex): LogWrite[] {
    const writes: LogWrite[] = [];
    for (const e of index.entries()) {
        writes.push({ diskOffset: e.diskOffset, length: e.length, logOffset: e.logOffset, zero: entryDataIsZero(e) });
    }
    return writes;
}

/** A log no larger than this many read sizes is read whole, once: index, checksums and writes all come from it. */
export const WHOLE_LOG_READ_SIZES = 2;

/** The log as the merge reads it, counting its reads. */
interface LogSource extends ByteSource {
    readonly reads: number;
    readonly bytesRead: number;
}

/**
 * Opens the version of the log the decision saw (its ETag). A log of at most WHOLE_LOG_READ_SIZES read sizes is
 * read whole with one ranged read (8 MiB GETs in parallel) and served from memory: its index, its checksum
 * verification and its writes then cost no further GET, and memory stays what one merge's read groups hold
 * anyway. A larger log is read where needed: index, checksums (when present), then the writes' read groups.
 */
async function openLog(ctx: LogContext): Promise<LogSource> {
    const { deps } = ctx;
    const version =
        ctx.logETag !== undefined && ctx.logSize !== undefined ? { etag: ctx.logETag, size: ctx.logSize } : undefined;
    const blob = await openBlobSource(ctx.blob, {
        signal: deps.signal,
        timeoutMs: deps.settings.callTimeoutMs,
        version,
    });
    let reads = 0;
    let bytesRead = 0;
    const counted = async (offset: number, length: number, signal?: AbortSignal): Promise<Buffer> => {
        const data = await blob.read(offset, length, signal);
        reads++;
        bytesRead += length;
        return data;
    };
    let inner: ByteSource = { size: blob.size, read: counted };
    if (blob.size > 0 && blob.size <= WHOLE_LOG_READ_SIZES * deps.settings.readBytes) {
        inner = bufferSource(await counted(0, blob.size, deps.signal));
    }
    return {
        size: inner.size,
        read: (offset, length, signal) => inner.read(offset, length, signal),
        get reads() {
            return reads;
        },
        get bytesRead() {
            return bytesRead;
        },
    };
}

/** Where an earlier invocation stopped: its step and the plan key the step counts in. */
export interface ResumePoint {
    fromStep: number;
    plan: string;
}

/**
 * Applies log n (the decision said apply or continue): index and checks, the intent (first time only), the dirty
 * marker, then the plan's steps under `ifSequenceNumberEqualTo: n-1` until done or the budget runs out. Done:
 * seal, row, notify, remove the log. Budget out: the row records the steps written (still under the intent,
 * ETag-conditioned) and the outcome says `continuing`.
 */
export async function applyLog(ctx: LogContext, row: ReplicaDiskRow, resume?: ResumePoint): Promise<MergeOutcome> {
    const { deps, log } = ctx;
    const started = performance.now();
    const source = await openLog(ctx);
    let index: HrlIndex;
    try {
        index = await readHrlIndex(source, { diskSize: row.disk.virtualSize, signal: deps.signal });
    } catch (err) {
        if (isHrlFormatError(err)) return refuse(ctx, row, reasonForLogError(err as HvrError), err);
        throw err;
    }
    const header = index.header;
    if (header.uniqueId !== log.logId) {
        return refuse(
            ctx,
            row,
            'InvalidLog',
            new HvrError(
                'VALIDATION_FAILED',
                `Log header UniqueId ${header.uniqueId} is not ${log.logId}, the id in its name.`,
            ),
        );
    }
    if (!ctx.resync && row.disk.sequence > 0 && header.previousUniqueId !== row.disk.lastLogId) {
        return refuse(
            ctx,
            row,
            'ChainGap',
            new HvrError(
                'CHAIN_BROKEN',
                `Log ${log.logId} follows ${header.previousUniqueId}, but the last applied log is ${row.disk.lastLogId}.`,
            ),
        );
    }
    if (
        !ctx.resync &&
        row.disk.vhd2DataWriteGuid !== undefined &&
        header.vhd2DataWriteGuid !== row.disk.vhd2DataWriteGuid
    ) {
        return refuse(
            ctx,
            row,
            'DiskChangedOffline',
            new HvrError(
                'DISK_CHANGED_OFFLINE',
                `Log ${log.logId} carries Vhd2DataWriteGuid ${header.vhd2DataWriteGuid}; the chain had ${row.disk.vhd2DataWriteGuid}.`,
            ),
        );
    }
    let extents;
    try {
        extents = resolveLastWriterWins(logWrites(index));
    } catch (err) {
        if (isHrlFormatError(err)) return refuse(ctx, row, 'InvalidLog', err);
        throw err;
    }
    const indexed = performance.now();
    const plan = applyPlanKey(deps.settings.readBytes);
    // A continuation of the same plan was verified before its first page; a new plan starts over (rewriting the
    // same bytes under the same guard is harmless).
    const fromStep = resume && resume.plan === plan ? resume.fromStep : 0;
    if (index.hasDataChecksums && fromStep === 0) {
        try {
            await verifyHrlData(source, index, { signal: deps.signal, readSize: deps.settings.readBytes });
        } catch (err) {
            if (isHrlFormatError(err)) return refuse(ctx, row, 'InvalidLog', err);
            throw err;
        }
    }
    const verified = performance.now();
    const calls = planPageWrites(extents);
    const steps = planApplySteps(calls, deps.settings.readBytes);

    // The row as this merge last wrote or read it: the row update after the seal starts from it.
    let known = row;
    if (fromStep === 0) {
        // The intent makes a crash between "sequence number set" and "row updated" recognisable on retry.
        known = await replaceReplicaDisk(
            deps.scope,
            row,
            {
                applyingSequence: log.sequence,
                applyingLogId: log.logId,
                applyingStep: 0,
                applyingPlan: plan,
                applyingLogETag: ctx.logETag,
            },
            deps.clock.now().toISOString(),
        );
        // After the intent (only the log that holds position n may describe it) and before the first page.
        await markLogDirty(ctx, calls);
    }

    const writer = new ReplicaPageWriter(
        ctx.replica,
        row.disk.virtualSize,
        log.sequence - 1,
        deps.settings.callTimeoutMs,
    );
    const budget = budgetOf(deps);
    const sampler = new ChurnSampler();
    try {
        const progress = await applyPlannedWrites(source, steps, writer, {
            concurrency: deps.settings.concurrency,
            readBytes: deps.settings.readBytes,
            signal: deps.signal,
            afterWrite: deps.afterWrite ? (k) => deps.afterWrite!(log, k) : undefined,
            fromStep,
            budgetExhausted: () => budget.exhausted(),
            observer: sampler,
        });
        if (!progress.complete) return await recordProgress(ctx, progress.stepsDone, steps.length, plan);
        await sealSequenceNumber(ctx, log.sequence);
    } catch (err) {
        if (isSequenceConditionFailure(err)) {
            deps.log?.(`merge: ${ctx.name} stopped: another merge moved the replica past ${log.sequence - 1}`);
            return { status: 'stale', name: ctx.name, sequence: log.sequence, detail: (err as Error).message };
        }
        throw err;
    }
    const written = performance.now();
    const updated = await recordApplied(ctx, index, { ranges: writtenRanges(calls), measure: sampler.result() }, known);
    const metrics: MergeMetrics = {
        entries: index.entryCount,
        bytes: index.dataBytes,
        extents: extents.length,
        putPageCalls: writer.counters.putPageCalls,
        clearPagesCalls: writer.counters.clearPagesCalls,
        minPutPageCalls: minimumPutPageCalls(extents),
        bytesPut: writer.counters.bytesPut,
        bytesCleared: writer.counters.bytesCleared,
        logReads: source.reads,
        logBytesRead: source.bytesRead,
        indexMs: indexed - started,
        verifyMs: verified - indexed,
        writeMs: written - verified,
        ms: performance.now() - started,
        steps: steps.length,
        fromStep,
    };
    for (const key of ['indexMs', 'verifyMs', 'writeMs', 'ms'] as const) metrics[key] = Math.round(metrics[key]);
    deps.log?.(`merge: applied ${ctx.name} as log ${log.sequence}`, { ...metrics });
    if (!updated) return { status: 'duplicate', name: ctx.name, sequence: log.sequence };
    const recoveryPointId = await afterApplied(ctx, updated, { notify: true, bytes: index.dataBytes });
    await ctx.blob.deleteIfExists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
    if (log.sequence % DIRTY_MARKER_COMPACT_EVERY_LOGS === 0) await compactMarkers(ctx);
    return { status: 'applied', name: ctx.name, sequence: log.sequence, metrics, recoveryPointId };
}

/**
 * The budget ran out after `stepsDone` steps, all written under the n-1 guard. The row records it only if it
 * still holds this log's intent at an earlier step (ETag-conditioned): a concurrent try that got further, or
 * finished the log, wins, and this one stops as `stale`.
 */
async function recordProgress(ctx: LogContext, stepsDone: number, steps: number, plan: string): Promise<MergeOutcome> {
    const { deps, log } = ctx;
    let recorded = false;
    await updateReplicaDisk(
        deps.scope,
        log.vmId,
        log.diskId,
        (cur) => {
            recorded = false;
            if (cur.sequence !== log.sequence - 1 || cur.applyingSequence !== log.sequence) return undefined;
            if (cur.applyingLogId !== log.logId) return undefined;
            if (cur.applyingPlan === plan && (cur.applyingStep ?? 0) >= stepsDone) return undefined;
            recorded = true;
            return { applyingStep: stepsDone, applyingPlan: plan };
        },
        deps.clock.now().toISOString(),
    );
    if (!recorded) {
        const detail = `another try of log ${log.sequence} recorded more progress or finished it`;
        deps.log?.(`merge: ${ctx.name} stopped: ${detail}`);
        return { status: 'stale', name: ctx.name, sequence: log.sequence, detail };
    }
    deps.log?.(`merge: ${ctx.name} wrote ${stepsDone} of ${steps} steps in this budget; continuing`, {
        stepsDone,
        steps,
    });
    return { status: 'continuing', name: ctx.name, sequence: log.sequence, stepsDone, steps };
}

/**
 * Tells the resync digest index which disk ranges log n writes (Put Pages and Clear Pages alike), as a marker
 * blob next to the replica. A refresh trusts the markers of every log up to the replica's sequence number, so
 * this must be durable before the seal: a log sealed without its marker would leave the index silently stale.
 * A retry writes the same marker again. Failing here stops the merge before any page is written (recoverable).
 */
async function markLogDirty(ctx: LogContext, calls: readonly PageWrite[]): Promise<void> {
    const { deps, log } = ctx;
    const disk: DiskBlobs = {
        container: deps.scope.conn.blob.getContainerClient(REPLICAS_CONTAINER),
        vmId: log.vmId,
        diskId: log.diskId,
    };
    const ranges = calls.map((c) => ({ offset: c.diskOffset, length: c.length }));
    try {
        await markDirty(disk, log.sequence, ranges, deadline(deps.settings.callTimeoutMs, deps.signal));
    } catch (err) {
        if (deps.signal?.aborted) throw err;
        throw new HvrError(
            'TRANSIENT',
            `Could not record the ${ranges.length} range(s) log ${log.sequence} writes on disk ${log.diskId} of VM ` +
                `${log.vmId} for the digest index (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ` +
                `no page was written, the merge will be retried.`,
            { sequence: log.sequence },
            { cause: err },
        );
    }
}

/**
 * Folds the disk's dirty markers into one (`compactDirtyMarkers`), after the log is recorded and its point made, so
 * they do not pile up one blob per log until the next resync. Best effort: a failure (a resync's refresh holding
 * the index, a timeout) is logged and the next multiple of DIRTY_MARKER_COMPACT_EVERY_LOGS tries again.
 */
async function compactMarkers(ctx: LogContext): Promise<void> {
    const { deps, log } = ctx;
    const disk: DiskBlobs = {
        container: deps.scope.conn.blob.getContainerClient(REPLICAS_CONTAINER),
        vmId: log.vmId,
        diskId: log.diskId,
    };
    try {
        const done = await compactDirtyMarkers(disk, deps.signal);
        deps.log?.(`merge: ${ctx.name} compacted the dirty markers of disk ${log.diskId}`, { ...done });
    } catch (err) {
        if (deps.signal?.aborted) throw err;
        deps.log?.(
            `merge: ${ctx.name} could not compact the dirty markers of disk ${log.diskId} ` +
                `(${err instanceof Error ? err.message.split('\n')[0] : String(err)}); a later log will`,
        );
    }
}

/**
 * Moves the blob's sequence number from n-1 to n once every page of log n is written. Conditioned on the ETag
 * read together with n-1, so it can only act on the state it checked; a concurrent merge of the same log
 * changes the ETag, and the loop then finds n (done by the other) or n-1 again.
 */
async function sealSequenceNumber(ctx: LogContext, sequence: number): Promise<void> {
    const { deps } = ctx;
    for (let attempt = 1; attempt <= 16; attempt++) {
        const props = await ctx.replica.getProperties({
            abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
        });
        const current = props.blobSequenceNumber ?? 0;
        if (current === sequence) return;
        if (current !== sequence - 1) {
            throw new HvrError(
                'SEQUENCE_CONDITION_NOT_MET',
                `Replica moved to sequence ${current} while log ${sequence} was applied.`,
            );
        }
        try {
            await ctx.replica.updateSequenceNumber('update', sequence, {
                conditions: { ifMatch: props.etag },
                abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
            });
            return;
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 412) continue;
            throw err;
        }
    }
    throw new HvrError('TRANSIENT', `The replica kept changing while log ${sequence} was sealed; will retry.`);
}

/** The disk ranges a plan writes (Put Pages and Clear Pages alike). */
function writtenRanges(calls: readonly PageWrite[]): ByteRange[] {
    return calls.map((c) => ({ offset: c.diskOffset, length: c.length }));
}

/** What a log adds to the disk's changes since its last recovery point. */
interface LogChanges {
    ranges: ByteRange[];
    measure: ChurnMeasure;
}

/**
 * The row after the sequence number is set; undefined when another merge recorded it first. `known` is the row
 * as this merge last saw it (its intent): the update tries it first and reads the row only when it is stale.
 */
async function recordApplied(
    ctx: LogContext,
    index: HrlIndex,
    changes: LogChanges,
    known?: ReplicaDiskRow,
): Promise<ReplicaDiskRow | undefined> {
    const { deps, log, meta, resync } = ctx;
    const at = deps.clock.now().toISOString();
    let changed = false;
    const row = await updateReplicaDisk(
        deps.scope,
        log.vmId,
        log.diskId,
        (cur) => {
            changed = false;
            if (cur.sequence >= log.sequence) return undefined;
            if (cur.sequence !== log.sequence - 1) {
                throw new HvrError(
                    'REPLICA_STATE_INVALID',
                    `Row of ${log.diskId} is at ${cur.sequence}; cannot record log ${log.sequence}.`,
                );
            }
            changed = true;
            const pointChurn: ChurnMeasure = cur.pointChurn
                ? (JSON.parse(cur.pointChurn) as ChurnMeasure)
                : { ...EMPTY_MEASURE };
            const stillWaiting = cur.waitingSequence !== undefined && cur.waitingSequence > log.sequence + 1;
            return {
                sequence: log.sequence,
                lastLogId: log.logId,
                vhd2DataWriteGuid: index.header.vhd2DataWriteGuid,
                applyingSequence: undefined,
                applyingLogId: undefined,
                applyingStep: undefined,
                applyingPlan: undefined,
                applyingLogETag: undefined,
                appliedBytes: cur.appliedBytes + index.dataBytes,
                lastAppliedAt: at,
                lastCapturedAt: meta.capturedAt ?? index.header.createdAt.toISOString(),
                lastCycleId: meta.cycleId,
                lastConsistency: meta.consistency,
                state: 'Replicating',
                resyncReason: resync ? undefined : cur.resyncReason,
                resyncDetail: resync ? undefined : cur.resyncDetail,
                resyncRequiredAt: resync ? undefined : cur.resyncRequiredAt,
                waitingSequence: stillWaiting ? cur.waitingSequence : undefined,
                waitingSince: stillWaiting ? cur.waitingSince : undefined,
                pointChanges: encodeRanges(unionRanges(decodeRanges(cur.pointChanges), changes.ranges)),
                pointChurn: JSON.stringify(addMeasures(pointChurn, changes.measure)),
            };
        },
        at,
        known,
    );
    return changed ? row : undefined;
}

export async function finishAfterCrash(ctx: LogContext, row: ReplicaDiskRow): Promise<MergeOutcome> {
    const { deps, name, log } = ctx;
    const source = await openLog(ctx);
    const index = await readHrlIndex(source, { diskSize: row.disk.virtualSize, signal: deps.signal });
    // The pages were written by the earlier try: their ranges are known from the index, their data was not sampled.
    const ranges = writtenRanges(planPageWrites(resolveLastWriterWins(logWrites(index))));
    const updated = await recordApplied(ctx, index, { ranges, measure: { ...EMPTY_MEASURE } });
    deps.log?.(`merge: ${name} was written by an earlier try; recorded it as log ${log.sequence}`);
    const recoveryPointId = updated
        ? await afterApplied(ctx, updated, { notify: true, bytes: index.dataBytes })
        : undefined;
    await ctx.blob.deleteIfExists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
    return { status: 'finished', name, sequence: log.sequence, recoveryPointId };
}

/** Notifies, then completes the cycle's recovery point when this was the VM's last disk to apply it. */
export async function afterApplied(
    ctx: LogContext,
    row: ReplicaDiskRow,
    options: { notify: boolean; bytes?: number },
): Promise<string | undefined> {
    const { deps, log, meta } = ctx;
    const at = deps.clock.now().toISOString();
    if (options.notify) {
        await deps.notifier.logApplied({
            vmId: log.vmId,
            diskId: log.diskId,
            sequence: log.sequence,
            logId: log.logId,
            cycleId: meta.cycleId,
            bytes: options.bytes ?? 0,
            capturedAt: row.disk.lastCapturedAt ?? at,
            appliedAt: at,
        });
    }
    if (!meta.cycleId) return undefined;
    const disks = await listReplicaDisks(deps.scope, log.vmId);
    // Most logs are not their cycle's last: the policy (two table reads) is read only for a complete cycle.
    const retention = isCycleComplete(disks, meta.cycleId) ? await deps.retentionFor?.(log.vmId) : undefined;
    const point = await recordCycleIfComplete(
        {
            scope: deps.scope,
            clock: deps.clock,
            callTimeoutMs: deps.settings.callTimeoutMs,
            signal: deps.signal,
            immutability: deps.immutability,
            log: deps.log,
        },
        {
            vmId: log.vmId,
            cycleId: meta.cycleId,
            consistency: meta.consistency,
            capturedAt: row.disk.lastCapturedAt ?? at,
            disks,
            retention,
        },
    );
    if (point?.created) {
        await deps.notifier.cycleComplete({
            vmId: log.vmId,
            cycleId: meta.cycleId,
            recoveryPointId: point.recoveryPointId,
            consistency: meta.consistency,
            capturedAt: point.capturedAt,
        });
    }
    return point?.recoveryPointId;
}
