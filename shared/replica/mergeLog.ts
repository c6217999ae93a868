import { RestError } from '@azure/core-rest-pipeline';
import { BlobClient, PageBlobClient } from '@azure/storage-blob';
import { integerSetting } from '../config';
import { errorCodeOf, ErrorCode, HvrError } from '../errors';
import { entryDataIsZero, HrlIndex, readHrlIndex, verifyHrlData } from '../hrl/reader';
import { ResyncReason } from '../lifecycle/instances';
import { Clock } from '../ports';
import { DiskBlobs, markDirty } from '../resync/digestIndex';
import {
    getReplicaDisk,
    listDisksWithGaps,
    listReplicaDisks,
    replaceReplicaDisk,
    ReplicaDiskRow,
    updateReplicaDisk,
} from '../state/disks';
import { StateScope } from '../state/protectedItems';
import { openBlobSource } from '../storage/blobSource';
import { callTimeoutMs, deadline } from '../storage/deadline';
import { applyPlannedWrites } from './applyLog';
import {
    LogBlobName,
    logBlobPrefix,
    LogMetadata,
    parseLogBlobName,
    parseLogMetadata,
    REPLICA_LOGS_CONTAINER,
    REPLICAS_CONTAINER,
} from './logBlob';
import { MergeNotifier } from './notifier';
import { isSequenceConditionFailure, ReplicaPageWriter } from './pageWriter';
import { quarantineLog } from './quarantine';
import { recordCycleIfComplete, RetentionPolicy } from './recoveryPoints';
import { replicaPageBlob } from './replicaDisk';
import { LogWrite, minimumPutPageCalls, PageWrite, planPageWrites, resolveLastWriterWins } from './writePlan';

/** Tuning read once from the app settings. */
export interface MergeSettings {
    /** Page writes in flight per merge (MERGE_CONCURRENCY, default 8). */
    concurrency: number;
    /** How long a log may wait for a missing predecessor before the chain counts as broken (MERGE_GAP_TIMEOUT_SECONDS). */
    gapTimeoutSeconds: number;
    /** Bound on every storage call (STORAGE_CALL_TIMEOUT_MS). */
    callTimeoutMs: number;
    /** Smallest ranged read of log data (MERGE_READ_BYTES, default 8 MiB). */
    readBytes: number;
}

export function mergeSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): MergeSettings {
    return {
        concurrency: Math.max(1, integerSetting('MERGE_CONCURRENCY', 8, env)),
        gapTimeoutSeconds: integerSetting('MERGE_GAP_TIMEOUT_SECONDS', 3600, env),
        callTimeoutMs: callTimeoutMs(),
        readBytes: Math.max(1024 * 1024, integerSetting('MERGE_READ_BYTES', 8 * 1024 * 1024, env)),
    };
}

/** What the merge works with; the function wires production ports, tests pass their own. */
export interface MergeDeps {
    scope: StateScope;
    notifier: MergeNotifier;
    clock: Clock;
    settings: MergeSettings;
    /** The VM's recovery point retention; absent means the policy default (24 h, no app-consistent frequency). */
    retentionFor?: (vmId: string) => Promise<RetentionPolicy | undefined>;
    log?: (message: string, data?: Record<string, unknown>) => void;
    signal?: AbortSignal;
    /** Fault injection for tests: called after each page call of a log (throw to stop the merge there). */
    afterWrite?: (log: LogBlobName, writesDone: number) => void | Promise<void>;
}

/** Per-log numbers, logged with every merge and returned in its outcome. */
export interface MergeMetrics {
    entries: number;
    /** Bytes of data the log carries. */
    bytes: number;
    /** Disk ranges left after last-writer-wins. */
    extents: number;
    putPageCalls: number;
    clearPagesCalls: number;
    /** Put Page calls the resolved ranges need at the least (clears not counted). */
    minPutPageCalls: number;
    bytesPut: number;
    bytesCleared: number;
    /** Time to read and check the index, to verify the data (0 without data checksums), to write, in all. */
    indexMs: number;
    verifyMs: number;
    writeMs: number;
    ms: number;
}

/** What happened to one log. Expected situations are outcomes; only transient failures throw. */
export type MergeOutcome =
    | {
          status: 'applied';
          name: string;
          sequence: number;
          metrics: MergeMetrics;
          recoveryPointId?: string;
      }
    /** A previous try wrote the log and set the sequence number but crashed before the table row: finished now. */
    | { status: 'finished'; name: string; sequence: number; recoveryPointId?: string }
    /** Already applied (a repeated upload or trigger): acknowledged and removed. */
    | { status: 'duplicate'; name: string; sequence: number }
    /** Its predecessor is not applied yet: left in place. */
    | { status: 'waiting'; name: string; sequence: number; appliedSequence: number }
    | {
          status: 'quarantined';
          name: string;
          reason: string;
          code: ErrorCode;
          detail: string;
          /** Whether this log made the disk resync required (false when it already was, or for a stray log). */
          diskMarked: boolean;
      }
    /** Another merge of the same log moved the replica on first (412 on the sequence number): stopped cleanly. */
    | { status: 'stale'; name: string; sequence: number; detail: string }
    /** The log blob no longer exists (another merge finished with it). */
    | { status: 'gone'; name: string };

const MAX_DECISION_ATTEMPTS = 8;

function logsContainer(deps: MergeDeps) {
    return deps.scope.conn.blob.getContainerClient(REPLICA_LOGS_CONTAINER);
}

/**
 * Merges the uploaded log `name` (in container `replica-logs`) into its replica disk, exactly once and in chain
 * order, then merges the following logs of the disk already uploaded. Callable for any log path: the blob
 * trigger, reprocessing, the local host. Returns one outcome per log it looked at, this one first.
 */
export async function mergeUploadedLog(deps: MergeDeps, name: string): Promise<MergeOutcome[]> {
    const outcomes: MergeOutcome[] = [];
    let next: string | undefined = name;
    const visited = new Set<string>();
    while (next !== undefined && !visited.has(next)) {
        visited.add(next);
        const outcome = await mergeOneLog(deps, next);
        outcomes.push(outcome);
        next = undefined;
        if (outcome.status === 'applied' || outcome.status === 'finished' || outcome.status === 'duplicate') {
            const parsed = parseLogBlobName(outcome.name);
            const row = await getReplicaDisk(deps.scope, parsed.vmId, parsed.diskId);
            if (row) {
                const candidates = await listLogNames(
                    deps,
                    logBlobPrefix(parsed.siteId, parsed.vmId, parsed.diskId, row.disk.sequence + 1),
                );
                next = candidates.find((c) => !visited.has(c));
                // Logs of the same position beyond the first are handled on later turns of the loop.
                for (const c of candidates)
                    if (c !== next && !visited.has(c)) outcomes.push(...(await mergeUploadedLog(deps, c)));
            }
        }
    }
    return outcomes;
}

async function listLogNames(deps: MergeDeps, prefix: string): Promise<string[]> {
    const names: string[] = [];
    for await (const item of logsContainer(deps).listBlobsFlat({
        prefix,
        abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
    })) {
        names.push(item.name);
    }
    return names;
}

interface LogContext {
    deps: MergeDeps;
    name: string;
    log: LogBlobName;
    blob: BlobClient;
    meta: LogMetadata;
    replica: PageBlobClient;
}

/** Durations come from the monotonic clock; the injected clock is for timestamps and the gap timeout. */
function ms(_deps: MergeDeps): number {
    return performance.now();
}

/** Decides and acts for one log; re-decides when the disk row changed under it. */
async function mergeOneLog(deps: MergeDeps, name: string): Promise<MergeOutcome> {
    let log: LogBlobName;
    try {
        log = parseLogBlobName(name);
    } catch (err) {
        return refuseStray(deps, name, 'InvalidLog', err);
    }
    const blob = logsContainer(deps).getBlobClient(name);
    let metadata: Record<string, string> | undefined;
    try {
        metadata = (await blob.getProperties({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) }))
            .metadata;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return { status: 'gone', name };
        throw err;
    }
    const first = await getReplicaDisk(deps.scope, log.vmId, log.diskId);
    if (!first) {
        throw new HvrError(
            'REPLICA_NOT_FOUND',
            `Log ${name} is for disk ${log.diskId} of VM ${log.vmId}, which has no replica yet; it will be retried.`,
            { name },
        );
    }
    if (first.disk.siteId !== log.siteId) {
        return refuseStray(
            deps,
            name,
            'Misplaced',
            new HvrError(
                'MESSAGE_OTHER_SITE',
                `Log ${name} names site ${log.siteId}, but the VM belongs to ${first.disk.siteId}.`,
            ),
        );
    }
    let meta: LogMetadata;
    try {
        meta = parseLogMetadata(metadata);
    } catch (err) {
        return refuse(
            {
                deps,
                name,
                log,
                blob,
                meta: { consistency: 'CrashConsistent', resync: false },
                replica: replicaPageBlob(deps.scope.conn.blob, first.disk.blobName),
            },
            first,
            'InvalidLog',
            err,
        );
    }
    const ctx: LogContext = {
        deps,
        name,
        log,
        blob,
        meta,
        replica: replicaPageBlob(deps.scope.conn.blob, first.disk.blobName),
    };
    for (let attempt = 1; ; attempt++) {
        const row = attempt === 1 ? first : await getReplicaDisk(deps.scope, log.vmId, log.diskId);
        if (!row) throw new HvrError('REPLICA_NOT_FOUND', `The replica disk row of ${name} disappeared.`);
        try {
            return await decide(ctx, row);
        } catch (err) {
            // A row or the log blob changed under us (ETag): decide again from what is there now.
            if (err instanceof HvrError && err.code === 'CONCURRENT_UPDATE' && attempt < MAX_DECISION_ATTEMPTS) {
                continue;
            }
            // Another merge finished with the log and removed it while this one was reading it.
            if (err instanceof HvrError && err.code === 'NOT_FOUND') {
                const exists = await blob.exists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
                if (!exists) return { status: 'gone', name };
            }
            throw err;
        }
    }
}

async function decide(ctx: LogContext, row: ReplicaDiskRow): Promise<MergeOutcome> {
    const { deps, log, name } = ctx;
    const applied = row.disk.sequence;
    const n = log.sequence;

    if (n <= applied) {
        if (n === applied && row.disk.lastLogId !== log.logId) {
            return refuseStray(
                deps,
                name,
                'Superseded',
                new HvrError(
                    'CHAIN_BROKEN',
                    `Log ${log.logId} claims position ${n}, where log ${row.disk.lastLogId} is applied.`,
                ),
            );
        }
        if (n === applied) await afterApplied(ctx, row, { notify: false });
        await ctx.blob.deleteIfExists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
        deps.log?.(`merge: ${name} is already applied (disk at ${applied}); removed`);
        return { status: 'duplicate', name, sequence: n };
    }

    if (n > applied + 1) return waitForPredecessor(ctx, row);

    const props = await ctx.replica.getProperties({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
    const blobSequence = props.blobSequenceNumber ?? 0;
    if (blobSequence === n && row.disk.applyingSequence === n && row.disk.applyingLogId === log.logId) {
        return finishAfterCrash(ctx, row);
    }
    if (blobSequence !== applied) {
        throw new HvrError(
            'REPLICA_STATE_INVALID',
            `Replica ${row.disk.blobName} has sequence number ${blobSequence} but its row says ${applied} logs ` +
                `are applied (intent: ${row.disk.applyingSequence ?? 'none'}); the disk needs inspection or a resync.`,
            { blobSequence, applied },
        );
    }
    if (row.disk.state === 'ResyncRequired' && !ctx.meta.resync) {
        const reason = row.disk.resyncReason ?? 'ChainGap';
        return refuse(
            ctx,
            row,
            reason,
            new HvrError(
                'CHAIN_BROKEN',
                `Disk awaits a resynchronization (${reason}); only a resync log applies at ${n}.`,
            ),
            false,
        );
    }
    return applyLog(ctx, row);
}

async function waitForPredecessor(ctx: LogContext, row: ReplicaDiskRow): Promise<MergeOutcome> {
    const { deps, log, name } = ctx;
    const now = deps.clock.now();
    const applied = row.disk.sequence;
    const since = row.disk.waitingSince ? new Date(row.disk.waitingSince) : now;
    const waitedSeconds = (now.getTime() - since.getTime()) / 1000;
    if (row.disk.waitingSince && waitedSeconds > deps.settings.gapTimeoutSeconds) {
        const missing = await listLogNames(deps, logBlobPrefix(log.siteId, log.vmId, log.diskId, applied + 1));
        if (missing.length === 0) {
            return refuse(
                ctx,
                row,
                'ChainGap',
                new HvrError(
                    'CHAIN_GAP',
                    `Log ${applied + 1} of disk ${log.diskId} did not arrive within ${deps.settings.gapTimeoutSeconds} s ` +
                        `(log ${log.sequence} waited since ${row.disk.waitingSince}).`,
                ),
            );
        }
    }
    if (!row.disk.waitingSince || (row.disk.waitingSequence ?? Infinity) > log.sequence) {
        await replaceReplicaDisk(
            deps.scope,
            row,
            {
                waitingSince: since.toISOString(),
                waitingSequence: Math.min(log.sequence, row.disk.waitingSequence ?? Infinity),
            },
            now.toISOString(),
        );
    }
    deps.log?.(`merge: ${name} waits for log ${applied + 1} (disk at ${applied})`);
    return { status: 'waiting', name, sequence: log.sequence, appliedSequence: applied };
}

function isHrlFormatError(err: unknown): boolean {
    return err instanceof HvrError && (err.code.startsWith('HRL_') || err.code === 'VALIDATION_FAILED');
}

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

async function applyLog(ctx: LogContext, row: ReplicaDiskRow): Promise<MergeOutcome> {
    const { deps, log, name, meta } = ctx;
    const started = ms(deps);
    const source = await openBlobSource(ctx.blob, { signal: deps.signal, timeoutMs: deps.settings.callTimeoutMs });
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
    if (!meta.resync && row.disk.sequence > 0 && header.previousUniqueId !== row.disk.lastLogId) {
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
        !meta.resync &&
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
    const indexed = ms(deps);
    if (index.hasDataChecksums) {
        try {
            await verifyHrlData(source, index, { signal: deps.signal, readSize: deps.settings.readBytes });
        } catch (err) {
            if (isHrlFormatError(err)) return refuse(ctx, row, 'InvalidLog', err);
            throw err;
        }
    }
    const verified = ms(deps);
    const calls = planPageWrites(extents);

    // The intent makes a crash between "sequence number set" and "row updated" recognisable on retry.
    if (row.disk.applyingSequence === log.sequence && row.disk.applyingLogId !== log.logId) {
        return refuseStray(
            deps,
            name,
            'Superseded',
            new HvrError('CHAIN_BROKEN', `Log ${row.disk.applyingLogId} is being applied at position ${log.sequence}.`),
        );
    }
    await replaceReplicaDisk(
        deps.scope,
        row,
        { applyingSequence: log.sequence, applyingLogId: log.logId },
        deps.clock.now().toISOString(),
    );
    // After the intent (only the log that holds position n may describe it) and before the first page.
    await markLogDirty(ctx, calls);

    const writer = new ReplicaPageWriter(
        ctx.replica,
        row.disk.virtualSize,
        log.sequence - 1,
        deps.settings.callTimeoutMs,
    );
    try {
        await applyPlannedWrites(source, calls, writer, {
            concurrency: deps.settings.concurrency,
            readBytes: deps.settings.readBytes,
            signal: deps.signal,
            afterWrite: deps.afterWrite ? (k) => deps.afterWrite!(log, k) : undefined,
        });
        await sealSequenceNumber(ctx, log.sequence);
    } catch (err) {
        if (isSequenceConditionFailure(err)) {
            deps.log?.(`merge: ${name} stopped: another merge moved the replica past ${log.sequence - 1}`);
            return { status: 'stale', name, sequence: log.sequence, detail: (err as Error).message };
        }
        throw err;
    }
    const written = ms(deps);
    const updated = await recordApplied(ctx, index);
    const metrics: MergeMetrics = {
        entries: index.entryCount,
        bytes: index.dataBytes,
        extents: extents.length,
        putPageCalls: writer.counters.putPageCalls,
        clearPagesCalls: writer.counters.clearPagesCalls,
        minPutPageCalls: minimumPutPageCalls(extents),
        bytesPut: writer.counters.bytesPut,
        bytesCleared: writer.counters.bytesCleared,
        indexMs: indexed - started,
        verifyMs: verified - indexed,
        writeMs: written - verified,
        ms: ms(deps) - started,
    };
    for (const key of ['indexMs', 'verifyMs', 'writeMs', 'ms'] as const) metrics[key] = Math.round(metrics[key]);
    deps.log?.(`merge: applied ${name} as log ${log.sequence}`, { ...metrics });
    if (!updated) return { status: 'duplicate', name, sequence: log.sequence };
    const recoveryPointId = await afterApplied(ctx, updated, { notify: true, bytes: index.dataBytes });
    await ctx.blob.deleteIfExists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
    return { status: 'applied', name, sequence: log.sequence, metrics, recoveryPointId };
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

/** The row after the sequence number is set; undefined when another merge recorded it first. */
async function recordApplied(ctx: LogContext, index: HrlIndex): Promise<ReplicaDiskRow | undefined> {
    const { deps, log, meta } = ctx;
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
            const stillWaiting = cur.waitingSequence !== undefined && cur.waitingSequence > log.sequence + 1;
            return {
                sequence: log.sequence,
                lastLogId: log.logId,
                vhd2DataWriteGuid: index.header.vhd2DataWriteGuid,
                applyingSequence: undefined,
                applyingLogId: undefined,
                appliedBytes: cur.appliedBytes + index.dataBytes,
                lastAppliedAt: at,
                lastCapturedAt: meta.capturedAt ?? index.header.createdAt.toISOString(),
                lastCycleId: meta.cycleId,
                lastConsistency: meta.consistency,
                state: 'Replicating',
                resyncReason: meta.resync ? undefined : cur.resyncReason,
                resyncDetail: meta.resync ? undefined : cur.resyncDetail,
                resyncRequiredAt: meta.resync ? undefined : cur.resyncRequiredAt,
                waitingSequence: stillWaiting ? cur.waitingSequence : undefined,
                waitingSince: stillWaiting ? cur.waitingSince : undefined,
            };
        },
        at,
    );
    return changed ? row : undefined;
}

async function finishAfterCrash(ctx: LogContext, row: ReplicaDiskRow): Promise<MergeOutcome> {
    const { deps, name, log } = ctx;
    const source = await openBlobSource(ctx.blob, { signal: deps.signal, timeoutMs: deps.settings.callTimeoutMs });
    const index = await readHrlIndex(source, { diskSize: row.disk.virtualSize, signal: deps.signal });
    const updated = await recordApplied(ctx, index);
    deps.log?.(`merge: ${name} was written by an earlier try; recorded it as log ${log.sequence}`);
    const recoveryPointId = updated
        ? await afterApplied(ctx, updated, { notify: true, bytes: index.dataBytes })
        : undefined;
    await ctx.blob.deleteIfExists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
    return { status: 'finished', name, sequence: log.sequence, recoveryPointId };
}

/** Notifies, then completes the cycle's recovery point when this was the VM's last disk to apply it. */
async function afterApplied(
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
    const retention = (await deps.retentionFor?.(log.vmId)) ?? undefined;
    const point = await recordCycleIfComplete(
        { scope: deps.scope, clock: deps.clock, callTimeoutMs: deps.settings.callTimeoutMs, signal: deps.signal },
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

function detailOf(err: unknown): { code: ErrorCode; detail: string } {
    return { code: errorCodeOf(err), detail: err instanceof Error ? err.message : String(err) };
}

/**
 * Marks the disk resync required (durable first), then moves this log and the disk's other waiting logs of the
 * broken chain to quarantine, then tells the orchestrations. The replica is not touched.
 */
async function refuse(
    ctx: LogContext,
    row: ReplicaDiskRow,
    reason: ResyncReason,
    err: unknown,
    markDisk = true,
): Promise<MergeOutcome> {
    const { deps, log, name } = ctx;
    const { code, detail } = detailOf(err);
    const at = deps.clock.now().toISOString();
    if (markDisk) {
        await updateReplicaDisk(
            deps.scope,
            log.vmId,
            log.diskId,
            (cur) =>
                cur.sequence !== row.disk.sequence
                    ? undefined
                    : {
                          state: 'ResyncRequired',
                          resyncReason: reason,
                          resyncDetail: detail.slice(0, 1024),
                          resyncRequiredAt: at,
                          waitingSequence: undefined,
                          waitingSince: undefined,
                      },
            at,
        );
    }
    await quarantineLog(deps.scope.conn.blob, name, { reason, code, detail, at });
    if (markDisk) {
        await quarantineBacklog(ctx, row.disk.sequence, `log ${log.sequence} broke the chain: ${reason}`, at);
        await deps.notifier.resyncRequired({ vmId: log.vmId, diskId: log.diskId, reason, detail, at });
    }
    deps.log?.(`merge: ${name} quarantined (${reason}, ${code}): ${detail}`);
    return { status: 'quarantined', name, reason, code, detail, diskMarked: markDisk };
}

/** Logs uploaded after the broken one belong to the broken chain: they can never apply. Resync logs stay. */
async function quarantineBacklog(ctx: LogContext, applied: number, why: string, at: string): Promise<void> {
    const { deps, log } = ctx;
    const prefix = logBlobPrefix(log.siteId, log.vmId, log.diskId);
    for await (const item of logsContainer(deps).listBlobsFlat({
        prefix,
        includeMetadata: true,
        abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
    })) {
        if (item.name === ctx.name) continue;
        let other: LogBlobName;
        try {
            other = parseLogBlobName(item.name);
        } catch {
            continue;
        }
        const resync = (item.metadata?.resync ?? '') === 'true';
        if (resync || other.sequence <= applied) continue;
        await quarantineLog(deps.scope.conn.blob, item.name, {
            reason: 'ChainGap',
            code: 'CHAIN_BROKEN',
            detail: why,
            at,
        });
    }
}

/** A log that is not the disk's to act on (bad name, another site, a second log at a taken position). */
async function refuseStray(deps: MergeDeps, name: string, reason: string, err: unknown): Promise<MergeOutcome> {
    const { code, detail } = detailOf(err);
    await quarantineLog(deps.scope.conn.blob, name, { reason, code, detail, at: deps.clock.now().toISOString() });
    deps.log?.(`merge: ${name} quarantined (${reason}, ${code}): ${detail}`);
    return { status: 'quarantined', name, reason, code, detail, diskMarked: false };
}

/**
 * Visits every disk with a log waiting for a missing predecessor and re-decides its lowest waiting log: merges it
 * if the predecessor has arrived since, or breaks the chain once MERGE_GAP_TIMEOUT_SECONDS has passed.
 * Event Grid fires once per upload, so without this sweep a gap that never closes would go unnoticed.
 */
export async function sweepChainGaps(deps: MergeDeps): Promise<MergeOutcome[]> {
    const outcomes: MergeOutcome[] = [];
    for (const row of await listDisksWithGaps(deps.scope)) {
        const { siteId, vmId, diskId, sequence } = row.disk;
        const names = await listLogNames(deps, logBlobPrefix(siteId, vmId, diskId));
        const ordered = names
            .map((nm) => {
                try {
                    return { nm, seq: parseLogBlobName(nm).sequence };
                } catch {
                    return undefined;
                }
            })
            .filter((x): x is { nm: string; seq: number } => x !== undefined && x.seq > sequence)
            .sort((a, b) => a.seq - b.seq);
        if (ordered.length === 0) {
            await updateReplicaDisk(
                deps.scope,
                vmId,
                diskId,
                () => ({ waitingSince: undefined, waitingSequence: undefined }),
                deps.clock.now().toISOString(),
            );
            continue;
        }
        outcomes.push(...(await mergeUploadedLog(deps, ordered[0]!.nm)));
    }
    return outcomes;
}
