import { RestError } from '@azure/core-rest-pipeline';
import { HvrError } from '../errors';
import { listResyncRuns } from '../resync/runs';
import {
    getReplicaDisk,
    listDisksWithGaps,
    replaceReplicaDisk,
    ReplicaDiskRow,
    updateReplicaDisk,
} from '../state/disks';
import { getUploadFacts } from '../state/uploadLedger';
import { deadline } from '../storage/deadline';
import { LogBlobName, logBlobPrefix, LogMetadata, parseLogBlobName, parseLogMetadata } from './logBlob';
import { afterApplied, applyLog, finishAfterCrash } from './mergeApply';
import { decideMerge, MergeAction } from './mergeDecision';
import { ChainGapVerdict, judgeChainGap } from './chainGap';
import { listLogNames, logsContainer, refuse, refuseStray } from './mergeRefusal';
import { LogContext, MergeDeps, MergeOutcome } from './mergeTypes';
import { replicaPageBlob } from './replicaDisk';

export {
    MAX_MERGE_TIME_BUDGET_SECONDS,
    mergeSettingsFromEnv,
    timeBudget,
    type MergeBudget,
    type MergeDeps,
    type MergeMetrics,
    type MergeOutcome,
    type MergeSettings,
} from './mergeTypes';

const MAX_DECISION_ATTEMPTS = 8;

/**
 * Merges the uploaded log `name` (in container `replica-logs`) into its replica disk, exactly once and in chain
 * order, then merges the following logs of the disk already uploaded, while the invocation's budget lasts.
 * Callable for any log path: the queue trigger, reprocessing, the local host. Returns one outcome per log it
 * looked at, this one first; a `continuing` outcome means a fresh invocation must carry on with that log.
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
            // Applied or finished: the disk is at this log's position (or beyond, when another merge went on: the
            // next log then decides `duplicate`). A duplicate says nothing about where the disk is: read it.
            const applied =
                outcome.status === 'duplicate'
                    ? (await getReplicaDisk(deps.scope, parsed.vmId, parsed.diskId))?.disk.sequence
                    : outcome.sequence;
            if (applied !== undefined) {
                const candidates = await listLogNames(
                    deps,
                    logBlobPrefix(parsed.siteId, parsed.vmId, parsed.diskId, applied + 1),
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

/**
 * The position a running resync of the disk expects its resync log at: the resync's own progress row (written
 * when the pipeline protected the replica) is the only source. Blob metadata a provider sets never counts.
 */
async function resyncExpectedAt(deps: MergeDeps, log: LogBlobName): Promise<number | undefined> {
    for (const run of await listResyncRuns(deps.scope, log.vmId)) {
        const disk = run.disks[log.diskId];
        if (run.state === 'Running' && disk?.snapshot !== undefined) return disk.baseSequence + 1;
    }
    return undefined;
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
    /** The log's properties now; undefined once it is gone. */
    const logProperties = () =>
        blob
            .getProperties({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) })
            .catch((err: unknown) => {
                if (err instanceof RestError && err.statusCode === 404) return undefined;
                throw err;
            });
    const props = await logProperties();
    if (!props) return gone(deps, name);
    const metadata = props.metadata;
    let logETag = props.etag;
    let logSize = props.contentLength;
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
    const replica = replicaPageBlob(deps.scope.conn.blob, first.disk.blobName);
    const resyncExpects = await resyncExpectedAt(deps, log);
    let meta: LogMetadata;
    try {
        meta = parseLogMetadata(metadata);
    } catch (err) {
        const ctx: LogContext = {
            deps,
            name,
            log,
            blob,
            meta: { consistency: 'CrashConsistent', resync: false },
            replica,
            resync: false,
            resyncExpects,
        };
        return refuse(ctx, first, 'InvalidLog', err);
    }
    for (let attempt = 1; ; attempt++) {
        const row = attempt === 1 ? first : await getReplicaDisk(deps.scope, log.vmId, log.diskId);
        if (!row) throw new HvrError('REPLICA_NOT_FOUND', `The replica disk row of ${name} disappeared.`);
        try {
            if (attempt > 1) {
                // The log may be what changed: the merge reads only the version it decides on (its ETag).
                const current = await logProperties();
                if (!current) return gone(deps, name);
                logETag = current.etag;
                logSize = current.contentLength;
            }
            const props = await replica.getProperties({
                abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
            });
            const action = decideMerge({
                log,
                row: row.disk,
                blobSequence: props.blobSequenceNumber ?? 0,
                resyncExpects,
                logETag,
            });
            const ctx: LogContext = {
                deps,
                name,
                log,
                blob,
                meta,
                replica,
                resync: false,
                resyncExpects,
                logETag,
                logSize,
            };
            return await execute(ctx, row, action);
        } catch (err) {
            // A row or the log blob changed under us (ETag): decide again from what is there now.
            if (err instanceof HvrError && err.code === 'CONCURRENT_UPDATE' && attempt < MAX_DECISION_ATTEMPTS) {
                continue;
            }
            // Another merge finished with the log and removed it while this one was reading it.
            if (err instanceof HvrError && err.code === 'NOT_FOUND') {
                const exists = await blob.exists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
                if (!exists) return gone(deps, name);
            }
            throw err;
        }
    }
}

function gone(deps: MergeDeps, name: string): MergeOutcome {
    deps.log?.(`merge: ${name} is no longer in the container: an earlier merge applied or refused it`);
    return { status: 'gone', name };
}

/** Carries out the decision. */
async function execute(ctx: LogContext, row: ReplicaDiskRow, action: MergeAction): Promise<MergeOutcome> {
    const { deps, log, name } = ctx;
    switch (action.kind) {
        case 'duplicate':
            if (action.atHead) await afterApplied(ctx, row, { notify: false });
            await ctx.blob.deleteIfExists({ abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal) });
            deps.log?.(`merge: ${name} is already applied (disk at ${row.disk.sequence}); removed`);
            return { status: 'duplicate', name, sequence: log.sequence };
        case 'superseded':
            return refuseStray(
                deps,
                name,
                'Superseded',
                new HvrError(
                    'CHAIN_BROKEN',
                    `Log ${log.logId} claims position ${log.sequence}, which log ${action.holder} holds.`,
                ),
            );
        case 'wait':
            return waitForPredecessor(ctx, row);
        case 'finish':
            return finishAfterCrash({ ...ctx, resync: ctx.resyncExpects === log.sequence }, row);
        case 'replaced':
            return refuse(
                ctx,
                row,
                'InvalidLog',
                new HvrError(
                    'VALIDATION_FAILED',
                    `Log ${name} was replaced while it was being applied (steps of its earlier content are written); ` +
                        'the replica needs a resync.',
                ),
            );
        case 'inconsistent':
            throw new HvrError(
                'REPLICA_STATE_INVALID',
                `Replica ${row.disk.blobName}: ${action.detail}; the disk needs inspection or a resync.`,
            );
        case 'refuse':
            return refuse(ctx, row, action.reason, new HvrError('CHAIN_BROKEN', action.detail), false);
        case 'apply':
            return applyLog({ ...ctx, resync: action.resync }, row);
        case 'continue':
            return applyLog({ ...ctx, resync: action.resync }, row, { fromStep: action.fromStep, plan: action.plan });
    }
}

async function waitForPredecessor(ctx: LogContext, row: ReplicaDiskRow): Promise<MergeOutcome> {
    const { deps, log, name } = ctx;
    const now = deps.clock.now();
    const applied = row.disk.sequence;
    const since = row.disk.waitingSince ? new Date(row.disk.waitingSince) : now;
    const waitedSeconds = (now.getTime() - since.getTime()) / 1000;
    // Below the wait's lower bound nothing is read: the common gap (a reordered upload) closes by itself.
    if (row.disk.waitingSince && waitedSeconds >= deps.settings.gapMinSeconds) {
        const verdict = await judgeGap(deps, log, row.disk.waitingSince, applied + 1, now);
        if (verdict.lost) {
            return refuse(ctx, row, 'ChainGap', new HvrError('CHAIN_GAP', `${verdict.detail}.`));
        }
        deps.log?.(`merge: ${name} keeps waiting: ${verdict.why}`);
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

/** Gathers the chain-gap facts of a missing log (the ledger, uploads under way, the policy) and judges them. */
async function judgeGap(
    deps: MergeDeps,
    log: LogBlobName,
    waitingSince: string,
    missingSequence: number,
    now: Date,
): Promise<ChainGapVerdict> {
    const prefix = logBlobPrefix(log.siteId, log.vmId, log.diskId, missingSequence);
    const [present, inProgress, uploads, copyFrequencySeconds] = await Promise.all([
        listLogNames(deps, prefix),
        hasUncommittedUpload(deps, prefix),
        getUploadFacts(deps.scope, log.vmId, log.diskId),
        deps.copyFrequencyFor?.(log.vmId),
    ]);
    if (present.length > 0) return { lost: false, why: `log ${missingSequence} has arrived (${present[0]})` };
    return judgeChainGap({
        diskId: log.diskId,
        missingSequence,
        waitingSince,
        now,
        copyFrequencySeconds,
        minSeconds: deps.settings.gapMinSeconds,
        uploads,
        uploadInProgress: inProgress,
    });
}

/** Whether a blob under `prefix` has blocks staged but not committed: an upload of it is under way. */
async function hasUncommittedUpload(deps: MergeDeps, prefix: string): Promise<boolean> {
    for await (const item of logsContainer(deps).listBlobsFlat({
        prefix,
        includeUncommitedBlobs: true,
        abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
    })) {
        // Called when no committed blob is there: anything listed now has staged blocks (or was just committed).
        void item;
        return true;
    }
    return false;
}

/**
 * Visits every disk with a log waiting for a missing predecessor and re-decides its lowest waiting log: merges it
 * if the predecessor has arrived since, or breaks the chain once the missing log is known lost
 * (shared/replica/chainGap.ts).
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
