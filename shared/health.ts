/**
 * Replication health of a protected VM, as ASR reports it (Normal / Warning / Critical with reasons), computed
 * from facts the monitor gathers. Pure: no I/O, no clock of its own, so the orchestrator can call it on replay.
 */

export type ReplicationHealth = 'Normal' | 'Warning' | 'Critical';

export type HealthReasonCode =
    | 'RpoWarningThresholdExceeded'
    | 'RpoCriticalThresholdExceeded'
    | 'ProviderHeartbeatMissing'
    | 'ProviderNotConnected'
    | 'ResyncRequired'
    | 'MergeFailing'
    | 'ProviderReportedError'
    | 'NonRecoverableError'
    | 'ReplicaBeingRepaired'
    | 'SuspiciousChurn';

export interface HealthReason {
    code: HealthReasonCode;
    severity: Exclude<ReplicationHealth, 'Normal'>;
    message: string;
    /** The service error code behind the reason (e.g. CHAIN_BROKEN), when there is one. */
    errorCode?: string;
}

/** Thresholds; see docs/lifecycle.md. Values in seconds. */
export interface HealthThresholds {
    rpoWarningSeconds: number;
    rpoCriticalSeconds: number;
    heartbeatWarningSeconds: number;
    heartbeatCriticalSeconds: number;
}

/**
 * RPO thresholds scale with the copy frequency: a healthy VM's RPO swings between the upload time and one copy
 * period plus the upload time. Warning when it exceeds 2 periods + 5 minutes (two cycles late), Critical past
 * 6 periods + 30 minutes. Heartbeats are expected every few minutes: Warning after 15, Critical after 60.
 */
export function healthThresholds(copyFrequencySeconds: number): HealthThresholds {
    return {
        rpoWarningSeconds: 2 * copyFrequencySeconds + 5 * 60,
        rpoCriticalSeconds: 6 * copyFrequencySeconds + 30 * 60,
        heartbeatWarningSeconds: 15 * 60,
        heartbeatCriticalSeconds: 60 * 60,
    };
}

/** What the monitor knows about a VM at one instant. Times are ISO 8601. */
export interface HealthFacts {
    now: string;
    copyFrequencySeconds: number;
    /**
     * Capture time of the newest data every disk of the VM has applied (its newest recovery point's, or a later
     * cycle's); RPO is measured from it. Absent: the VM has never been replicated and its RPO is unknown.
     */
    lastCapturedAt?: string;
    /**
     * When monitoring began. Not an RPO (a VM with no recovery point has none): the time without one is measured
     * from it for the thresholds, and the heartbeat silence until the first heartbeat.
     */
    monitoringSince: string;
    lastHeartbeatAt?: string;
    resyncRequired?: { reason: string; detail: string; at: string };
    /** A recoverable merge failure not yet cleared by a later successful apply. */
    mergeFailure?: { code: string; message: string; since: string };
    /** A recoverable error the provider reported (it retries on its side). */
    providerFailure?: { code: string; message: string; since: string };
    /** A non-recoverable error: replication cannot continue until an operator acts. */
    blockingError?: { code: string; message: string; at: string };
    /** Disks whose row holds a write intent: a log is partly written, the replica is between recovery points. */
    disksBeingRepaired?: DiskBeingRepaired[];
}

/** A disk row with a write intent (`applyingSequence`), as the merge leaves it until the log is recorded. */
export interface DiskBeingRepaired {
    diskId: string;
    /** The log being written (the replica holds logs up to sequence - 1 plus part of this one). */
    applyingSequence: number;
}

/** The reason shown while a replica is torn: never Normal, even if nothing else is wrong. */
export function replicaRepairReason(disks: readonly DiskBeingRepaired[]): HealthReason | undefined {
    if (disks.length === 0) return undefined;
    const list = disks.map((d) => `${d.diskId} (log ${d.applyingSequence})`).join(', ');
    return {
        code: 'ReplicaBeingRepaired',
        severity: 'Warning',
        message: `Being repaired: a log is partly applied on disk ${list}; the merge finishes it, the replica is between recovery points.`,
    };
}

/**
 * The health to show now: the recorded assessment, made honest for disks whose row holds a write intent
 * (a merge in progress, or cut off and about to be retried). Worst severity wins, as in the assessment.
 */
export function withReplicaRepairs(
    shown: { health: ReplicationHealth; reasons: HealthReason[] },
    disks: readonly DiskBeingRepaired[],
): { health: ReplicationHealth; reasons: HealthReason[] } {
    const reason = replicaRepairReason(disks);
    if (!reason) return shown;
    const reasons = [...shown.reasons.filter((r) => r.code !== 'ReplicaBeingRepaired'), reason];
    return { health: shown.health === 'Critical' ? 'Critical' : 'Warning', reasons };
}

export interface HealthAssessment {
    health: ReplicationHealth;
    reasons: HealthReason[];
    /** rpoSecondsAt(lastCapturedAt, now): null while the VM has no applied data (RPO unknown). */
    rpoSeconds: number | null;
    /** The next instant at which health would get worse if nothing happens (for the monitor's timer). */
    nextThresholdAt?: string;
}

function secondsBetween(fromIso: string, toIso: string): number {
    return Math.max(0, Math.floor((Date.parse(toIso) - Date.parse(fromIso)) / 1000));
}

/**
 * The RPO of a VM at `now`, the one rule the monitor, its metric and the API share: whole seconds since the
 * capture time of the newest data every disk has applied (`lastCapturedAt`: at least the newest recovery
 * point's), or null (unknown) when there is none yet: a VM never replicated has no RPO, not a small one.
 * Computed when asked, never read back from a stored value.
 */
export function rpoSecondsAt(lastCapturedAt: string | undefined, now: Date | string): number | null {
    if (lastCapturedAt === undefined) return null;
    const captured = Date.parse(lastCapturedAt);
    if (Number.isNaN(captured)) return null;
    const at = typeof now === 'string' ? Date.parse(now) : now.getTime();
    return Math.max(0, Math.floor((at - captured) / 1000));
}

function formatDuration(seconds: number): string {
    if (seconds < 120) return `${seconds} s`;
    if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
}

/** Assesses health from the facts; the worst reason decides the health. */
export function assessReplicationHealth(facts: HealthFacts): HealthAssessment {
    const t = healthThresholds(facts.copyFrequencySeconds);
    const reasons: HealthReason[] = [];
    const rpoSeconds = rpoSecondsAt(facts.lastCapturedAt, facts.now);
    const candidates: number[] = [];
    const nowMs = Date.parse(facts.now);
    // Without a recovery point the RPO is unknown, but the wait for one still crosses the same thresholds.
    const rpoBase = Date.parse(rpoSeconds === null ? facts.monitoringSince : facts.lastCapturedAt!);
    const dataAgeSeconds = rpoSeconds ?? secondsBetween(facts.monitoringSince, facts.now);
    const describeAge = (): string =>
        rpoSeconds === null
            ? `No recovery point ${formatDuration(dataAgeSeconds)} after monitoring began (RPO unknown)`
            : `RPO is ${formatDuration(rpoSeconds)}`;

    if (dataAgeSeconds > t.rpoCriticalSeconds) {
        reasons.push({
            code: 'RpoCriticalThresholdExceeded',
            severity: 'Critical',
            message: `${describeAge()}, over the critical threshold of ${formatDuration(t.rpoCriticalSeconds)}.`,
        });
    } else if (dataAgeSeconds > t.rpoWarningSeconds) {
        reasons.push({
            code: 'RpoWarningThresholdExceeded',
            severity: 'Warning',
            message: `${describeAge()}, over the warning threshold of ${formatDuration(t.rpoWarningSeconds)}.`,
        });
        candidates.push(rpoBase + (t.rpoCriticalSeconds + 1) * 1000);
    } else {
        candidates.push(rpoBase + (t.rpoWarningSeconds + 1) * 1000);
    }

    const heartbeatBase = facts.lastHeartbeatAt ?? facts.monitoringSince;
    const silentSeconds = secondsBetween(heartbeatBase, facts.now);
    const heartbeatMs = Date.parse(heartbeatBase);
    if (silentSeconds > t.heartbeatCriticalSeconds) {
        reasons.push({
            code: 'ProviderNotConnected',
            severity: 'Critical',
            message: `No heartbeat from the provider for ${formatDuration(silentSeconds)} (critical after ${formatDuration(t.heartbeatCriticalSeconds)}).`,
        });
    } else if (silentSeconds > t.heartbeatWarningSeconds) {
        reasons.push({
            code: 'ProviderHeartbeatMissing',
            severity: 'Warning',
            message: `No heartbeat from the provider for ${formatDuration(silentSeconds)} (warning after ${formatDuration(t.heartbeatWarningSeconds)}).`,
        });
        candidates.push(heartbeatMs + (t.heartbeatCriticalSeconds + 1) * 1000);
    } else {
        candidates.push(heartbeatMs + (t.heartbeatWarningSeconds + 1) * 1000);
    }

    if (facts.resyncRequired) {
        reasons.push({
            code: 'ResyncRequired',
            severity: 'Critical',
            message: `Resynchronization required (${facts.resyncRequired.reason}): ${facts.resyncRequired.detail}`,
        });
    }
    if (facts.mergeFailure) {
        reasons.push({
            code: 'MergeFailing',
            severity: 'Warning',
            message: `Applying replicated data fails and is being retried: ${facts.mergeFailure.code} ${facts.mergeFailure.message}`,
        });
    }
    if (facts.providerFailure) {
        reasons.push({
            code: 'ProviderReportedError',
            severity: 'Warning',
            message: `The provider reports an error and is retrying: ${facts.providerFailure.code} ${facts.providerFailure.message}`,
        });
    }
    if (facts.blockingError) {
        reasons.push({
            code: 'NonRecoverableError',
            severity: 'Critical',
            message: `${facts.blockingError.code}: ${facts.blockingError.message}`,
            errorCode: facts.blockingError.code,
        });
    }

    const repair = replicaRepairReason(facts.disksBeingRepaired ?? []);
    if (repair) reasons.push(repair);

    const health: ReplicationHealth = reasons.some((r) => r.severity === 'Critical')
        ? 'Critical'
        : reasons.length > 0
          ? 'Warning'
          : 'Normal';
    const future = candidates.filter((ms) => ms > nowMs);
    const assessment: HealthAssessment = { health, reasons, rpoSeconds };
    if (future.length > 0) assessment.nextThresholdAt = new Date(Math.min(...future)).toISOString();
    return assessment;
}

/** The names Azure alert rules look for in the logs (see infra and docs/lifecycle.md). */
export const HEALTH_METRICS = {
    rpoSeconds: 'ReplicationRpoSeconds',
    healthChanged: 'ReplicationHealthChanged',
} as const;
