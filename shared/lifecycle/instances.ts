/**
 * Deterministic orchestration instance ids and the names of the events that move them.
 * Every starter and every raiser uses these, so a repeated command finds the running instance
 * instead of starting a second one.
 */
export const instanceIds = {
    /** Enable protection → initial replication → finalize: one per VM. */
    enableProtection: (vmId: string): string => `protect:${vmId}`,
    /** The long-running replication monitor (RPO, health), `continueAsNew` loop: one per VM. */
    replicationMonitor: (vmId: string): string => `monitor:${vmId}`,
    /** Resynchronization of a VM's disks. */
    resync: (vmId: string): string => `resync:${vmId}`,
    /** Disable protection. */
    disableProtection: (vmId: string): string => `disable:${vmId}`,
    /** A test failover drill. */
    testFailover: (vmId: string): string => `testfailover:${vmId}`,
    /** Cleanup of a VM's test failover drill (also run by a drill that failed, as a sub-orchestration). */
    testFailoverCleanup: (vmId: string): string => `testfailovercleanup:${vmId}`,
    /** Planned or unplanned failover of a VM to Azure. */
    failover: (vmId: string): string => `failover:${vmId}`,
    /** Change recovery point of a failed-over VM, before commit (ASR's applyRecoveryPoint). */
    changeRecoveryPoint: (vmId: string): string => `changerecoverypoint:${vmId}`,
    /** Commit of a VM's failover. */
    commitFailover: (vmId: string): string => `commitfailover:${vmId}`,
    /** Failback of a failed-over VM to its on-premises host (ASR's planned failover from Azure). */
    failback: (vmId: string): string => `failback:${vmId}`,
    /** Re-protect after failback (ASR's reverse replication): the replica levelled, then delta cycles. */
    reprotect: (vmId: string): string => `reprotect:${vmId}`,
    /** The running operation of a recovery plan (one at a time per plan). */
    recoveryPlan: (planName: string): string => `recoveryplan:${planName}`,
    /**
     * The one timer of an Enable protection job's initial replication wait (orchestrations/lifecycle/deadline.ts):
     * it raises `deadlineReached` to `protect:{vmId}` when the timeout passes. Per job, so a later job of the same
     * VM never meets an earlier job's deadline.
     */
    initialReplicationDeadline: (vmId: string, jobId: string): string => `irdeadline:${vmId}:${jobId}`,
};

/** External events raised to orchestrations. */
export const lifecycleEvents = {
    /** The merge applied a log to a disk. Payload: LogAppliedEvent. */
    logApplied: 'LogApplied',
    /** Every disk of a VM applied its log of one cycle; a recovery point exists. Payload: CycleCompleteEvent. */
    cycleComplete: 'CycleComplete',
    /** A disk needs resynchronization. Payload: ResyncRequiredEvent. */
    resyncRequired: 'ResyncRequired',
    /** The merge failed on a recoverable error and will be retried. Payload: MergeFailedEvent. */
    mergeFailed: 'MergeFailed',
    /** Provider heartbeat for a VM. Payload: ProviderHeartbeatEvent. */
    heartbeat: 'ProviderHeartbeat',
    /** Initial replication progress for a VM's disks. Payload: InitialReplicationProgressEvent. */
    initialReplicationProgress: 'InitialReplicationProgress',
    /** The provider finished a replication cycle (all logs uploaded). Payload: CycleUploadedEvent. */
    cycleUploaded: 'CycleUploaded',
    /** Resync progress and completion from the provider. */
    resyncProgress: 'ResyncProgress',
    resyncCompleted: 'ResyncCompleted',
    /** The provider asks for a disk's next digest round. Payload: ResyncDigestRequestEvent (orchestrations/resync). */
    resyncDigestRequest: 'ResyncDigestRequest',
    /** The provider shut the VM down for a planned failover and shipped its final cycle. Payload: FailoverShutdownEvent. */
    failoverShutdownCompleted: 'FailoverShutdownCompleted',
    /**
     * Failback, from the provider: a round's manifest uploaded, a log applied, the VM started on premises, or the
     * failback given up. One event name for the four commands (payload: the command's fields with its `type`, and
     * `at`), so the orchestration waits on one name at a time: durable-functions hands an event to the newest
     * waiter of its name, and a waiter left open from an earlier round would swallow it.
     */
    failbackMessage: 'FailbackMessage',
    /** A provider-side error, classified. Payload: ProviderErrorEvent. */
    providerError: 'ProviderError',
    /** An operator resumes a recovery plan held by a manual action. Payload: RecoveryPlanResumeEvent (orchestrations/recoveryPlan). */
    recoveryPlanResume: 'RecoveryPlanResume',
    /** Operator asks to stop (cancel) a running orchestration cleanly. */
    cancel: 'Cancel',
    /** A deadline instance's timer fired (orchestrations/lifecycle/deadline.ts). Payload: DeadlineReachedEvent. */
    deadlineReached: 'DeadlineReached',
} as const;

export type LifecycleEventName = (typeof lifecycleEvents)[keyof typeof lifecycleEvents];

export interface LogAppliedEvent {
    vmId: string;
    diskId: string;
    /** Position of the log in the disk's chain (1-based) = the replica blob's sequence number after it. */
    sequence: number;
    logId: string;
    cycleId?: string;
    bytes: number;
    /** When the provider captured the data of this log (ISO 8601); RPO is measured from it. */
    capturedAt: string;
    appliedAt: string;
}

export interface CycleCompleteEvent {
    vmId: string;
    cycleId: string;
    recoveryPointId: string;
    consistency: 'CrashConsistent' | 'AppConsistent';
    capturedAt: string;
}

export type ResyncReason =
    | 'PendingLogBytesOverHalfDisk'
    | 'ChainGap'
    | 'LogNotClosed'
    | 'DiskChangedOffline'
    | 'InvalidLog'
    | 'OperatorRequested';

export interface ResyncRequiredEvent {
    vmId: string;
    diskId: string;
    reason: ResyncReason;
    detail: string;
    at: string;
}

export interface MergeFailedEvent {
    vmId: string;
    diskId: string;
    code: string;
    message: string;
    recoverable: boolean;
    at: string;
}

export interface ProviderHeartbeatEvent {
    vmId: string;
    siteId: string;
    at: string;
    /** Bytes of .hrl not yet shipped, per disk. */
    pendingLogBytes: Record<string, number>;
}

export interface InitialReplicationProgressEvent {
    vmId: string;
    /** Percent (0–100) per disk. */
    disks: Record<string, number>;
    at: string;
}

/** Payload of `FailoverShutdownCompleted` on `failover:{vmId}`: the command's fields and when it was handled. */
export interface FailoverShutdownEvent {
    vmId: string;
    failoverId: string;
    shutDownAt: string;
    cycleId: string;
    logs: { diskId: string; sequence: number; logId: string; bytes: number }[];
    at: string;
}

export interface ProviderErrorEvent {
    vmId: string;
    code: string;
    message: string;
    recoverable: boolean;
    at: string;
}
