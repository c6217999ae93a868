import type { JobRequester } from '../../shared/state/jobs';
import { lifecycleEvents, ResyncReason } from '../../shared/lifecycle/instances';

/** The orchestration name the API and the scheduler start, on instance `instanceIds.resync(vmId)`. */
export const RESYNC_ORCHESTRATION = 'resync';

/**
 * The provider asks for the next round's digests of one disk (the children of the nodes that differed).
 * Raised on `resync:{vmId}` by the provider channel from the `ResyncDigestRequest` command (docs/provider-contract.md).
 */
export const RESYNC_DIGEST_REQUEST_EVENT = lifecycleEvents.resyncDigestRequest;

/** Input of the resync orchestration. The API sends the first four fields; the scheduler the same. */
export interface ResyncInput {
    vmId: string;
    siteId: string;
    reason: ResyncReason;
    /** ISO 8601: when the resync was asked for (operator) or chosen (scheduler). */
    requestedAt: string;
    /** The operator who asked for it (absent: the scheduler); recorded in the job. */
    requestedBy?: JobRequester;
    /** Minutes without any provider message before the resync is abandoned and rolled back (default 360). */
    providerTimeoutMinutes?: number;
    /** Minutes the merge may take to apply the resync logs after ResyncCompleted (default 120). */
    verifyTimeoutMinutes?: number;
    /** Replica bytes one digest-index refresh call reads at most (default 16 GiB): bounds an activity's run time. */
    refreshBudgetBytes?: number;
}

/** Payload of ResyncDigestRequest: the contract's one type (shared/contracts/messages.ts). */
export type { ResyncDigestRequestPayload as ResyncDigestRequestEvent } from '../../shared/contracts/messages';

/** One disk in StartResync (shared/contracts/messages.ts). */
export type { StartResyncDisk } from '../../shared/contracts/messages';

/** The custom status of `resync:{vmId}`. */
export interface ResyncStatus {
    stage:
        | 'ProtectingReplica'
        | 'ComputingDigests'
        | 'StartingOnProvider'
        | 'WaitingForProvider'
        | 'Verifying'
        | 'RollingBack'
        | 'Completed'
        | 'Cancelled'
        | 'Failed';
    jobId: string;
    resyncId: string;
    task?: string;
    /** Percent per disk as the provider reports it. */
    disks: Record<string, number>;
    round?: Record<string, number>;
    lastProviderMessageAt?: string;
    retry?: { attempt: number; code: string; message: string; nextAttemptAt: string };
    error?: { code: string; message: string };
}

export interface ResyncResult {
    result: 'Completed' | 'Cancelled' | 'Failed';
    jobId: string;
    resyncId: string;
    recoveryPointId?: string;
    error?: { code: string; message: string };
}
