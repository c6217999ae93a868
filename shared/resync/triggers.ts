import { ProviderHeartbeatEvent, ResyncReason } from '../lifecycle/instances';

/** Delta replication gives way to resync once the .hrl bytes waiting on the host reach this share of the disk. */
export const PENDING_LOG_RESYNC_FRACTION = 0.5;

/** Why one disk (or, for an operator's request, a whole VM) must be resynchronized. */
export interface ResyncDecision {
    reason: ResyncReason;
    /** One line for operators: what was seen, with the values. */
    detail: string;
    /** The disk concerned; absent when the decision is for every disk of the VM. */
    diskId?: string;
    /** Start now, whatever the off-hours window says (only an operator's request). */
    immediate: boolean;
}

/**
 * The disks whose pending (not yet shipped) log bytes reached half of the disk, from one provider heartbeat.
 * Disks the pipeline does not know are ignored: a heartbeat is not allowed to invent disks.
 */
export function resyncForHeartbeat(
    heartbeat: Pick<ProviderHeartbeatEvent, 'pendingLogBytes'>,
    diskSizes: Readonly<Record<string, number>>,
): ResyncDecision[] {
    const decisions: ResyncDecision[] = [];
    for (const [diskId, pending] of Object.entries(heartbeat.pendingLogBytes)) {
        const size = diskSizes[diskId];
        if (size === undefined || size <= 0 || !Number.isFinite(pending) || pending < 0) continue;
        if (pending >= size * PENDING_LOG_RESYNC_FRACTION) {
            const percent = ((pending / size) * 100).toFixed(1);
            decisions.push({
                reason: 'PendingLogBytesOverHalfDisk',
                detail: `${pending} bytes of replica log are pending for disk ${diskId} of ${size} bytes (${percent} %, limit ${PENDING_LOG_RESYNC_FRACTION * 100} %)`,
                diskId,
                immediate: false,
            });
        }
    }
    return decisions;
}

/** What the merge reports when it cannot apply a disk's next log. */
export interface MergeFailure {
    diskId: string;
    /** An ErrorCode of the merge (a string, as it arrives in a MergeFailedEvent). */
    code: string;
    message: string;
    /** For CHAIN_GAP: since when the merge has been waiting for the missing log (ISO 8601). */
    waitingSince?: string;
}

/**
 * Whether a merge failure calls for a resync, and why. The merge reports CHAIN_GAP only once the missing log is
 * known lost (shared/replica/chainGap.ts owns that rule and its wait), so a chain gap always calls for one.
 * Failures that a retry may cure, or that are the replica's own fault rather than the log's, are not resync
 * triggers (undefined).
 */
export function resyncForMergeFailure(failure: MergeFailure): ResyncDecision | undefined {
    const base = { diskId: failure.diskId, immediate: false };
    const code = failure.code;
    if (code === 'CHAIN_GAP') {
        return {
            ...base,
            reason: 'ChainGap',
            detail: `the log chain of disk ${failure.diskId} has a lost log${failure.waitingSince ? ` (waiting since ${failure.waitingSince})` : ''}: ${failure.message}`,
        };
    }
    if (code === 'CHAIN_BROKEN') {
        return {
            ...base,
            reason: 'ChainGap',
            detail: `the log chain of disk ${failure.diskId} is broken: ${failure.message}`,
        };
    }
    if (code === 'HRL_NOT_CLOSED') {
        return {
            ...base,
            reason: 'LogNotClosed',
            detail: `a log of disk ${failure.diskId} was not closed cleanly (EOLLocation 0): ${failure.message}`,
        };
    }
    if (code === 'DISK_CHANGED_OFFLINE') {
        return {
            ...base,
            reason: 'DiskChangedOffline',
            detail: `disk ${failure.diskId} was modified outside replication (Vhd2DataWriteGuid changed): ${failure.message}`,
        };
    }
    if (code.startsWith('HRL_')) {
        return {
            ...base,
            reason: 'InvalidLog',
            detail: `a log of disk ${failure.diskId} is invalid (${code}): ${failure.message}`,
        };
    }
    return undefined;
}

/** What the merge reads from a log's header before applying it. */
export interface LogHeaderFacts {
    diskId: string;
    /** 0 when the host crashed before closing the log. */
    eolLocation: number | bigint;
    vhd2DataWriteGuid: string;
}

/**
 * The header checks that call for a resync, for callers that hold the parsed header rather than an error:
 * a log not closed cleanly, or a data-write GUID other than the one the disk's chain carries.
 */
export function resyncForLogHeader(
    header: LogHeaderFacts,
    knownDataWriteGuid: string | undefined,
): ResyncDecision | undefined {
    if (BigInt(header.eolLocation) === 0n) {
        return {
            reason: 'LogNotClosed',
            detail: `a log of disk ${header.diskId} was not closed cleanly (EOLLocation 0)`,
            diskId: header.diskId,
            immediate: false,
        };
    }
    if (
        knownDataWriteGuid !== undefined &&
        knownDataWriteGuid.toLowerCase() !== header.vhd2DataWriteGuid.toLowerCase()
    ) {
        return {
            reason: 'DiskChangedOffline',
            detail: `disk ${header.diskId} changed offline: Vhd2DataWriteGuid ${header.vhd2DataWriteGuid}, expected ${knownDataWriteGuid}`,
            diskId: header.diskId,
            immediate: false,
        };
    }
    return undefined;
}

/** An operator's "resync now": every disk of the VM, started at once. */
export function resyncForOperator(requestedBy: string, comment?: string): ResyncDecision {
    const who = requestedBy.trim() || 'an operator';
    return {
        reason: 'OperatorRequested',
        detail: comment ? `requested by ${who}: ${comment}` : `requested by ${who}`,
        immediate: true,
    };
}
