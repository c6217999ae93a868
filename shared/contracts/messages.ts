import type { Consistency } from './uploadMetadata';

/**
 * The provider contract: what on-premises providers send (commands, queue `provider-commands`) and what the
 * pipeline sends them (events, topic `provider-events`). Every body is JSON with `type` and `version`; the JSON
 * Schemas in ./schemas.ts (published as docs/schemas/*.json) are the authority, these types mirror them.
 */

export const CONTRACT_VERSION = 1;

/** Service Bus entity names. */
export const PROVIDER_COMMANDS_QUEUE = 'provider-commands';
export const PROVIDER_EVENTS_TOPIC = 'provider-events';

/** Azure Service Bus Standard's message size limit; bigger commands are rejected before parsing. */
export const MAX_COMMAND_BYTES = 256 * 1024;

/**
 * The longest `request` of a ResyncDigestRequest, in base64 characters (252 KiB; 193,536 bytes decoded). With the
 * other fields at their maximum (ids of 64 characters) the body stays under MAX_COMMAND_BYTES, so a request the
 * schema accepts is never refused as too large. A bigger request is coarsened by the provider (docs).
 */
export const MAX_DIGEST_REQUEST_BASE64 = 252 * 1024;

export type { Consistency } from './uploadMetadata';

/** Percent (0–100, whole numbers) per disk id. */
export type PercentByDisk = Record<string, number>;

// ---- commands (provider → pipeline) ----

/** A provider (Hyper-V host or VMM server) announces itself to its site. Site-level. */
export interface RegisterCommand {
    type: 'Register';
    version: 1;
    providerId: string;
    kind: 'HyperVHost' | 'VmmServer';
    hostName: string;
    providerVersion: string;
}

export interface VmHeartbeat {
    vmId: string;
    /** Bytes of .hrl tracked but not yet uploaded, per disk. */
    pendingLogBytes: Record<string, number>;
}

/** The provider is alive; per VM, the .hrl bytes it still has to ship. Site-level. */
export interface HeartbeatCommand {
    type: 'Heartbeat';
    version: 1;
    providerId: string;
    vms: VmHeartbeat[];
}

export interface InitialReplicationProgressCommand {
    type: 'InitialReplicationProgress';
    version: 1;
    vmId: string;
    disks: PercentByDisk;
}

export interface CycleLog {
    diskId: string;
    /** Position of the log in the disk's chain (1-based). */
    sequence: number;
    logId: string;
    bytes: number;
}

/** Every log of one replication cycle is uploaded. */
export interface CycleCompletedCommand {
    type: 'CycleCompleted';
    version: 1;
    vmId: string;
    cycleId: string;
    consistency: Consistency;
    /** When the provider captured the cycle's data (ISO 8601 UTC); RPO is measured from it. */
    capturedAt: string;
    logs: CycleLog[];
}

export interface UploadRequest {
    diskId: string;
    sequence: number;
    logId: string;
}

/** Asks for write-only upload URLs, one per log. Answered with an UploadGrant event. */
export interface UploadGrantRequestCommand {
    type: 'UploadGrantRequest';
    version: 1;
    vmId: string;
    /** Echoed in the UploadGrant so the provider can match answer to question. */
    requestId: string;
    uploads: UploadRequest[];
}

export interface ResyncProgressCommand {
    type: 'ResyncProgress';
    version: 1;
    vmId: string;
    resyncId: string;
    disks: PercentByDisk;
}

export interface ResyncCompletedCommand {
    type: 'ResyncCompleted';
    version: 1;
    vmId: string;
    resyncId: string;
    diskIds: string[];
}

/**
 * Asks for the next round of one disk's resync comparison: the digests of the listed nodes of one level (the
 * children of the nodes that differed). `request` is the binary digest request of docs/resync.md, base64; the
 * answer is a StartResync naming that disk with `round` and a manifest of exactly those nodes.
 */
export interface ResyncDigestRequestCommand {
    type: 'ResyncDigestRequest';
    version: 1;
    vmId: string;
    resyncId: string;
    diskId: string;
    /** The round the answering manifest will be: the previous round of that disk + 1 (2 for the first request). */
    round: number;
    /** `encodeDigestRequest(...)`, standard base64 with padding, at most MAX_DIGEST_REQUEST_BASE64 characters. */
    request: string;
}

/**
 * What the provider channel raises on `resync:{vmId}` for a ResyncDigestRequest: the command's fields, `request`
 * still base64 (the resync's activity decodes it against the disk's geometry), and when it was accepted. The one
 * type the command handler writes and the resync orchestration reads.
 */
export type ResyncDigestRequestPayload = Omit<ResyncDigestRequestCommand, 'type' | 'version'> & { at: string };

/** A provider-side failure, classified: recoverable ones are retried, the others make the VM Critical. */
export interface ProviderErrorCommand {
    type: 'ProviderError';
    version: 1;
    /** Absent for a site-level failure (sent with sessionId `site:{siteId}`). */
    vmId?: string;
    code: string;
    message: string;
    recoverable: boolean;
}

/**
 * Answers ShutdownForFailover: the VM is shut down, and its final cycle (every write up to the shutdown) is
 * uploaded as logs with `cycleid` = `cycleId`. The pipeline fails over onto that cycle's recovery point.
 */
export interface FailoverShutdownCompletedCommand {
    type: 'FailoverShutdownCompleted';
    version: 1;
    vmId: string;
    /** The `failoverId` of the ShutdownForFailover it answers. */
    failoverId: string;
    /** When the VM was off (ISO 8601 UTC): nothing was written after it. */
    shutDownAt: string;
    /** The final cycle's id, as set in the logs' `cycleid` metadata. */
    cycleId: string;
    /** The final cycle's logs, one per disk (a disk with no write since its last log still sends an empty one). */
    logs: CycleLog[];
}

// ---- failback (planned failover from Azure to on-premises) ----

/**
 * A failback's phases: `Synchronize` while the VM in Azure still runs (most of the difference goes down), `Final`
 * after it is shut down (what it wrote meanwhile). A full download has only `Final`.
 */
export const FAILBACK_PHASES = ['Synchronize', 'Final'] as const;
export type FailbackPhase = (typeof FAILBACK_PHASES)[number];

/** Why a provider gives a failback up (FailbackFailed.code). */
export const FAILBACK_FAILURE_CODES = ['GRANT_EXPIRED', 'FAILBACK_APPLY_FAILED', 'VALIDATION_FAILED'] as const;

/** The provider uploaded the manifest a StartFailback disk entry asked for (to its `manifestUrl`). */
export interface FailbackManifestUploadedCommand {
    type: 'FailbackManifestUploaded';
    version: 1;
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    diskId: string;
    round: number;
}

/** The provider applied every log of a FailbackLogReady to the on-premises disks; each disk's digest after. */
export interface FailbackLogAppliedCommand {
    type: 'FailbackLogApplied';
    version: 1;
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    /** Per disk: XXH3-128 (hex) of the level-0 digests of the whole disk after applying, with the failback's seed. */
    disks: { diskId: string; rootDigest: string }[];
}

/** The VM runs on premises again (answers CompleteFailback). */
export interface FailbackCompletedCommand {
    type: 'FailbackCompleted';
    version: 1;
    vmId: string;
    failbackId: string;
    startedAt: string;
}

/** The provider cannot go on with a failback (a link expired, a disk does not match, a write failed). */
export interface FailbackFailedCommand {
    type: 'FailbackFailed';
    version: 1;
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    code: (typeof FAILBACK_FAILURE_CODES)[number];
    message: string;
    /** Whether the on-premises disks are as before this failback began (nothing of a log was applied). */
    disksUntouched: boolean;
}

export type ProviderCommand =
    | RegisterCommand
    | HeartbeatCommand
    | InitialReplicationProgressCommand
    | CycleCompletedCommand
    | UploadGrantRequestCommand
    | ResyncProgressCommand
    | ResyncCompletedCommand
    | ResyncDigestRequestCommand
    | FailoverShutdownCompletedCommand
    | FailbackManifestUploadedCommand
    | FailbackLogAppliedCommand
    | FailbackCompletedCommand
    | FailbackFailedCommand
    | ProviderErrorCommand;

export type ProviderCommandType = ProviderCommand['type'];

// ---- events (pipeline → provider) ----

export interface DiskToReplicate {
    diskId: string;
    sizeBytes: number;
}

export interface StartReplicationEvent {
    type: 'StartReplication';
    version: 1;
    vmId: string;
    policyName: string;
    copyFrequencySeconds: 30 | 300 | 900;
    appConsistentSnapshotFrequencyHours: number;
    /** 'Immediately' or an ISO 8601 UTC instant. */
    initialReplicationStart: string;
    disks: DiskToReplicate[];
}

export interface UploadGrantItem {
    diskId: string;
    sequence: number;
    logId: string;
    /** `replica-logs/{siteId}/{vmId}/{diskId}/{sequence}-{logId}.hrl` (logUploadPath in ./blobNames.ts) */
    blobPath: string;
    /** Write-only SAS URL (create + write) for exactly that blob. */
    url: string;
    expiresOn: string;
}

export interface UploadGrantEvent {
    type: 'UploadGrant';
    version: 1;
    vmId: string;
    requestId: string;
    grants: UploadGrantItem[];
}

export interface StartResyncEvent {
    type: 'StartResync';
    version: 1;
    vmId: string;
    resyncId: string;
    diskIds: string[];
    /** Fixed block size of the checksum comparison. */
    blockSizeBytes: number;
    reason: string;
    /** Per disk: this round's digest manifest (read-only URL) and the resync log's chain position. */
    disks?: StartResyncDisk[];
}

export interface StartResyncDisk {
    diskId: string;
    sizeBytes: number;
    /** Upload the resync log as `{resyncSequence}-{logId}.hrl` with blob metadata resync=true. */
    resyncSequence: number;
    /** 1 for the coarse manifest; later rounds answer the provider's digest requests. */
    round: number;
    manifestUrl: string;
    manifestExpiresOn: string;
}

export interface StopReplicationEvent {
    type: 'StopReplication';
    version: 1;
    vmId: string;
    reason: string;
}

/**
 * Planned failover: shut the VM down, then upload every write up to the shutdown as a final cycle and answer
 * FailoverShutdownCompleted, all before `respondBy`. A provider that cannot must leave the VM running.
 */
export interface ShutdownForFailoverEvent {
    type: 'ShutdownForFailover';
    version: 1;
    vmId: string;
    /** Names this failover; echoed in FailoverShutdownCompleted and CancelFailoverShutdown. */
    failoverId: string;
    /** After this instant (ISO 8601 UTC) the pipeline gives up and sends CancelFailoverShutdown. */
    respondBy: string;
    reason: string;
}

/** The planned failover will not go on: start the VM again if it was shut down for it, and keep replicating. */
export interface CancelFailoverShutdownEvent {
    type: 'CancelFailoverShutdown';
    version: 1;
    vmId: string;
    failoverId: string;
    reason: string;
}

/** One disk of a failback round: the nodes to describe and where to upload their manifest. */
export interface StartFailbackDisk {
    diskId: string;
    sizeBytes: number;
    round: number;
    /** Level of the nodes to describe: 0 (every coarse block) in round 1. */
    level: number;
    /** Rounds after the first: the nodes, as a digest request (base64, docs/resync.md). */
    request?: string;
    /** Write-only SAS URL (create + write) for exactly this round's manifest blob. */
    manifestUrl: string;
    manifestExpiresOn: string;
}

/**
 * Failback, one round of the comparison: for each disk, the provider digests the named nodes of its on-premises
 * disk with `seed` and the geometry, and uploads the manifest (docs/resync.md) to `manifestUrl`.
 */
export interface StartFailbackEvent {
    type: 'StartFailback';
    version: 1;
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    /** The failback's digest seed, 16 hex digits. */
    seed: string;
    leafSizeBytes: number;
    fanout: number;
    levels: number;
    disks: StartFailbackDisk[];
}

/** A difference log per disk, to download (read-only, expires) and apply to the on-premises disk. */
export interface FailbackLogReadyEvent {
    type: 'FailbackLogReady';
    version: 1;
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    /** The failback's digest seed (16 hex digits) and geometry: the root digests of FailbackLogApplied use them. */
    seed: string;
    leafSizeBytes: number;
    fanout: number;
    levels: number;
    disks: { diskId: string; logId: string; bytes: number; logUrl: string; logExpiresOn: string }[];
}

/** The on-premises disks are level with the VM in Azure, which is shut down: start the VM on premises. */
export interface CompleteFailbackEvent {
    type: 'CompleteFailback';
    version: 1;
    vmId: string;
    failbackId: string;
}

/** The failback will not go on: keep the VM off on premises; the VM in Azure keeps running. */
export interface CancelFailbackEvent {
    type: 'CancelFailback';
    version: 1;
    vmId: string;
    failbackId: string;
    reason: string;
}

export type Weekday = 'Mon' | 'Tue' | 'Wed' | 'Thu' | 'Fri' | 'Sat' | 'Sun';

/**
 * When the provider may use how much upload bandwidth, as ASR's agent throttles: a work-hours window on work
 * days, one limit inside it and another outside. A limit that is absent means unlimited.
 */
export interface BandwidthSchedule {
    /** IANA time zone the window is read in (the site's). */
    timeZone: string;
    workDays: Weekday[];
    /** HH:MM, 24-hour, local time. */
    workHoursStart: string;
    workHoursEnd: string;
    workHoursMbps?: number;
    offHoursMbps?: number;
}

export interface PolicyChangedEvent {
    type: 'PolicyChanged';
    version: 1;
    policyName: string;
    /** The VMs the change applies to. */
    vmIds: string[];
    copyFrequencySeconds: 30 | 300 | 900;
    appConsistentSnapshotFrequencyHours: number;
    bandwidth: BandwidthSchedule;
}

export type ProviderEvent =
    | StartReplicationEvent
    | UploadGrantEvent
    | StartResyncEvent
    | StopReplicationEvent
    | PolicyChangedEvent
    | ShutdownForFailoverEvent
    | CancelFailoverShutdownEvent
    | StartFailbackEvent
    | FailbackLogReadyEvent
    | CompleteFailbackEvent
    | CancelFailbackEvent;

/** Commands that name one VM travel in that VM's session; the others in the site's session. */
export function isVmScoped(command: ProviderCommand): command is Extract<ProviderCommand, { vmId: string }> {
    return 'vmId' in command && typeof command.vmId === 'string';
}

/** The session a command must be sent in: the VM id, or `site:{siteId}` for site-level messages. */
export function expectedSessionId(command: ProviderCommand, siteId: string): string {
    return isVmScoped(command) ? command.vmId : siteSessionId(siteId);
}

export function siteSessionId(siteId: string): string {
    return `site:${siteId}`;
}
