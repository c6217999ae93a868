import { FAILOVER_CONTAINER } from '../failover/failoverDisks';

/**
 * The names of a failback (ASR's "planned failover from Azure to on-premises"), each defined once: its phases,
 * the data sync options, and the blobs it writes. The blobs live in container `failover`, next to the disks of
 * the VM being failed back: `{vmId}/{failbackId}/{phase}/{diskId}/{round}.manifest` (uploaded by the provider
 * through a write-only grant), `.../{diskId}/{round}.differing` (the cloud's differing leaves of that round) and
 * `{vmId}/{failbackId}/{phase}/{diskId}.hrl` (the difference log the provider reads through a read-only grant).
 */
export const FAILBACK_CONTAINER = FAILOVER_CONTAINER;

/** The phases are the contract's (shared/contracts/messages.ts). */
export { FAILBACK_PHASES, type FailbackPhase } from '../contracts/messages';
import type { FailbackPhase } from '../contracts/messages';

/**
 * ASR's `dataSyncOption` of a failback (HyperVReplicaAzureFailbackProviderInput): `ForDownTime` synchronizes the
 * differences before the VM in Azure is shut down (the shortest downtime); `ForSynchronization` shuts it down first
 * and downloads every written block of its disks ("full download": no comparison, the most transfer).
 */
export const DATA_SYNC_OPTIONS = ['ForDownTime', 'ForSynchronization'] as const;
export type DataSyncOption = (typeof DATA_SYNC_OPTIONS)[number];

/** Failback ids are `fb-{jobId}`; they name blobs and travel in the contract as ids. */
export function failbackIdOf(jobId: string): string {
    return `fb-${jobId}`;
}

export function failbackPrefix(vmId: string, failbackId: string): string {
    return `${vmId}/${failbackId}/`;
}

export function failbackManifestBlobName(
    vmId: string,
    failbackId: string,
    phase: FailbackPhase,
    diskId: string,
    round: number,
): string {
    return `${failbackPrefix(vmId, failbackId)}${phase}/${diskId}/${round}.manifest`;
}

export function failbackDifferingBlobName(
    vmId: string,
    failbackId: string,
    phase: FailbackPhase,
    diskId: string,
    round: number,
): string {
    return `${failbackPrefix(vmId, failbackId)}${phase}/${diskId}/${round}.differing`;
}

export function failbackLogBlobName(vmId: string, failbackId: string, phase: FailbackPhase, diskId: string): string {
    return `${failbackPrefix(vmId, failbackId)}${phase}/${diskId}.hrl`;
}
