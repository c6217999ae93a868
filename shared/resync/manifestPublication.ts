import { HvrError } from '../errors';
import { REPLICAS_CONTAINER } from '../replica/logBlob';
import { StateScope } from '../state/protectedItems';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';
import { nodeCountAt } from './digest';
import { DigestIndex, DiskBlobs, refreshDigestIndex } from './digestIndex';
import { decodeDigestRequest } from './manifest';
import { readOnlyUrl } from '../storage/readOnlyUrl';
import { requireDisk, requireRun, saveResyncRun } from './runs';

// The digest manifests a resync publishes for its provider (docs/resync.md): round 1 from the refreshed digest
// index, later rounds answering the provider's digest requests, each a block blob read through a read-only SAS.

/** Digest manifests for providers: `{vmId}/{resyncId}/{diskId}/{round}.manifest`, read through a read-only SAS. */
export const RESYNC_MANIFESTS_CONTAINER = 'resync-manifests';

/** How long a manifest URL stays readable (a provider reads it once, soon after StartResync). */
export const MANIFEST_SAS_MINUTES = 120;

export function manifestBlobName(vmId: string, resyncId: string, diskId: string, round: number): string {
    return `${vmId}/${resyncId}/${diskId}/${round}.manifest`;
}

/** The replica, digest index and dirty markers of one disk, in the `replicas` container. */
export function replicaDigestBlobs(conn: StorageConnection, vmId: string, diskId: string): DiskBlobs {
    return { container: conn.blob.getContainerClient(REPLICAS_CONTAINER), vmId, diskId };
}

async function uploadManifest(conn: StorageConnection, blobName: string, bytes: Buffer): Promise<void> {
    const container = conn.blob.getContainerClient(RESYNC_MANIFESTS_CONTAINER);
    await container.createIfNotExists({ abortSignal: deadline() });
    // Deterministic bytes for a given index and round: a retry overwrites with the same content.
    await container.getBlockBlobClient(blobName).uploadData(bytes, { abortSignal: deadline() });
}

export type ManifestStep = { done: false; leavesHashed: number } | { done: true; manifestBytes: number };

/**
 * Brings the disk's digest index up to date and publishes the round-1 (coarsest level) manifest. The refresh is
 * incremental: the merge marks the ranges of every log before sealing it, so only the blocks written since the
 * last refresh are read (all of the replica's written ranges only when the index is new, rotated, invalidated by
 * a rollback, or missing a log's marker). `budgetBytes` bounds one call's replica reads; the caller calls again
 * until `done` (the refresh resumes from the index header).
 */
export async function publishRoundOneManifest(
    scope: StateScope,
    input: { vmId: string; resyncId: string; diskId: string; budgetBytes?: number },
): Promise<ManifestStep> {
    const run = await requireRun(scope, input.vmId, input.resyncId);
    const disk = requireDisk(run, input.diskId);
    if (disk.manifestBytes !== undefined) return { done: true, manifestBytes: disk.manifestBytes };
    const d = replicaDigestBlobs(scope.conn, input.vmId, input.diskId);
    const refreshed = await refreshDigestIndex(
        d,
        input.budgetBytes !== undefined ? { budgetBytes: input.budgetBytes } : {},
    );
    if (!refreshed.complete) return { done: false, leavesHashed: refreshed.leavesHashed };
    const index = await DigestIndex.open(d);
    if (!index || !index.isCurrent(disk.baseSequence) || index.header.appliedSequence !== disk.baseSequence) {
        throw new HvrError(
            'REPLICA_STATE_INVALID',
            `Replica ${disk.blobName} moved past log ${disk.baseSequence} during resync ${input.resyncId} (index at ${index?.header.appliedSequence ?? 'none'}).`,
        );
    }
    const bytes = await index.manifest(0, 1, [{ first: 0, count: nodeCountAt(index.geometry, 0) }]);
    await uploadManifest(scope.conn, manifestBlobName(input.vmId, input.resyncId, input.diskId, 1), bytes);
    disk.manifestBytes = bytes.length;
    await saveResyncRun(scope, run);
    return { done: true, manifestBytes: bytes.length };
}

/**
 * Answers a provider's digest request (`encodeDigestRequest`, base64) with the manifest of the requested nodes,
 * published as round `round`. RESYNC_REQUEST_INVALID (non-recoverable) for a request that does not fit the disk.
 */
export async function publishRequestedManifest(
    scope: StateScope,
    input: { vmId: string; resyncId: string; diskId: string; round: number; request: string },
): Promise<{ manifestBytes: number }> {
    const run = await requireRun(scope, input.vmId, input.resyncId);
    requireDisk(run, input.diskId);
    if (!Number.isInteger(input.round) || input.round < 2 || input.round > 64) {
        throw new HvrError('RESYNC_REQUEST_INVALID', `Digest request round must be 2–64, got ${input.round}.`);
    }
    const index = await DigestIndex.open(replicaDigestBlobs(scope.conn, input.vmId, input.diskId));
    if (!index) throw new HvrError('REPLICA_STATE_INVALID', `Disk ${input.diskId} has no digest index.`);
    const request = decodeDigestRequest(Buffer.from(input.request, 'base64'), index.geometry);
    const bytes = await index.manifest(request.level, input.round, request.ranges);
    await uploadManifest(scope.conn, manifestBlobName(input.vmId, input.resyncId, input.diskId, input.round), bytes);
    return { manifestBytes: bytes.length };
}

export interface ManifestLink {
    diskId: string;
    round: number;
    manifestUrl: string;
    manifestExpiresOn: string;
}

/** Read-only SAS URLs for the named manifests. */
export async function manifestLinks(
    conn: StorageConnection,
    vmId: string,
    resyncId: string,
    wanted: readonly { diskId: string; round: number }[],
): Promise<ManifestLink[]> {
    const out: ManifestLink[] = [];
    for (const w of wanted) {
        const blobName = manifestBlobName(vmId, resyncId, w.diskId, w.round);
        const { url, expiresOn } = await readOnlyUrl(conn, RESYNC_MANIFESTS_CONTAINER, blobName, MANIFEST_SAS_MINUTES);
        out.push({ diskId: w.diskId, round: w.round, manifestUrl: url, manifestExpiresOn: expiresOn });
    }
    return out;
}
