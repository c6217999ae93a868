import { errorCodeOf, ErrorCode, HvrError } from '../errors';
import { ResyncReason } from '../lifecycle/instances';
import { ReplicaDiskRow, updateReplicaDisk } from '../state/disks';
import { forgetReportedLogs } from '../state/uploadLedger';
import { deadline } from '../storage/deadline';
import { LogBlobName, logBlobPrefix, parseLogBlobName, REPLICA_LOGS_CONTAINER } from './logBlob';
import { LogContext, MergeDeps, MergeOutcome } from './mergeTypes';
import { quarantineLog } from './quarantine';

export function logsContainer(deps: MergeDeps) {
    return deps.scope.conn.blob.getContainerClient(REPLICA_LOGS_CONTAINER);
}

export async function listLogNames(deps: MergeDeps, prefix: string): Promise<string[]> {
    const names: string[] = [];
    for await (const item of logsContainer(deps).listBlobsFlat({
        prefix,
        abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
    })) {
        names.push(item.name);
    }
    return names;
}

function detailOf(err: unknown): { code: ErrorCode; detail: string } {
    return { code: errorCodeOf(err), detail: err instanceof Error ? err.message : String(err) };
}

/**
 * Marks the disk resync required (durable first), then moves this log and the disk's other waiting logs of the
 * broken chain to quarantine, then tells the orchestrations. The replica is not touched.
 */
export async function refuse(
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
                          // Only a replaced log refuses after its intent: clear it, or the resync could never
                          // protect the disk (it waits for intents to end).
                          ...(cur.applyingLogId === log.logId && cur.applyingSequence === log.sequence
                              ? {
                                    applyingSequence: undefined,
                                    applyingLogId: undefined,
                                    applyingStep: undefined,
                                    applyingPlan: undefined,
                                    applyingLogETag: undefined,
                                }
                              : {}),
                      },
            at,
        );
    }
    await quarantineLog(deps.scope.conn.blob, name, { reason, code, detail, at });
    if (markDisk) {
        await quarantineBacklog(ctx, row.disk.sequence, `log ${log.sequence} broke the chain: ${reason}`, at);
        // The reports named positions of the broken chain; a resync may reuse them.
        await forgetReportedLogs(deps.scope, log.vmId, log.diskId);
        await deps.notifier.resyncRequired({ vmId: log.vmId, diskId: log.diskId, reason, detail, at });
    }
    deps.log?.(`merge: ${name} quarantined (${reason}, ${code}): ${detail}`);
    return { status: 'quarantined', name, reason, code, detail, diskMarked: markDisk };
}

/**
 * Logs uploaded after the broken one belong to the broken chain: they can never apply. The log a running resync
 * expects stays (the pipeline's resync state says which; blob metadata does not count).
 */
async function quarantineBacklog(ctx: LogContext, applied: number, why: string, at: string): Promise<void> {
    const { deps, log } = ctx;
    const prefix = logBlobPrefix(log.siteId, log.vmId, log.diskId);
    for await (const item of logsContainer(deps).listBlobsFlat({
        prefix,
        abortSignal: deadline(deps.settings.callTimeoutMs, deps.signal),
    })) {
        if (item.name === ctx.name) continue;
        let other: LogBlobName;
        try {
            other = parseLogBlobName(item.name);
        } catch {
            continue;
        }
        if (other.sequence === ctx.resyncExpects || other.sequence <= applied) continue;
        await quarantineLog(deps.scope.conn.blob, item.name, {
            reason: 'ChainGap',
            code: 'CHAIN_BROKEN',
            detail: why,
            at,
        });
    }
}

/** A log that is not the disk's to act on (bad name, another site, a second log at a taken position). */
export async function refuseStray(deps: MergeDeps, name: string, reason: string, err: unknown): Promise<MergeOutcome> {
    const { code, detail } = detailOf(err);
    await quarantineLog(deps.scope.conn.blob, name, { reason, code, detail, at: deps.clock.now().toISOString() });
    deps.log?.(`merge: ${name} quarantined (${reason}, ${code}): ${detail}`);
    return { status: 'quarantined', name, reason, code, detail, diskMarked: false };
}

export function isHrlFormatError(err: unknown): boolean {
    return err instanceof HvrError && (err.code.startsWith('HRL_') || err.code === 'VALIDATION_FAILED');
}
