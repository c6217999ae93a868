import { RestError } from '@azure/core-rest-pipeline';
import { BlobServiceClient, PageBlobClient } from '@azure/storage-blob';
import { HvrError } from '../errors';
import { replicaPageBlob } from '../replica/replicaDisk';
import { RecoveryPoint } from '../state/recoveryPoints';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';
import { readOnlyUrl } from '../storage/readOnlyUrl';
import { decodeVhdFooter, VHD_FOOTER_SIZE } from '../vhd/footer';
import { blobSnapshotId } from '../storage/snapshotId';

/**
 * The disks a failover boots from: each disk snapshot of the recovery point copied, server side, into its own page
 * blob in container `failover` (`{vmId}/{drillId}/{diskId}.vhd`). Azure imports a managed disk from a blob, not
 * from a blob snapshot, so the copy is needed; the replica keeps taking logs meanwhile, because a snapshot never
 * changes. The copy is the asynchronous Copy Blob (Put Page From URL and incremental copy are not available on
 * every backend, and a page blob copy of a whole disk can take longer than one call may last).
 */
export const FAILOVER_CONTAINER = 'failover';

/** How long the read SAS on a snapshot lasts: long enough for a large asynchronous copy to finish. */
export const SNAPSHOT_SAS_HOURS = 24;

export function failoverBlobName(vmId: string, drillId: string, diskId: string): string {
    return `${vmId}/${drillId}/${diskId}.vhd`;
}

export function failoverPageBlob(blob: BlobServiceClient, blobName: string): PageBlobClient {
    return blob.getContainerClient(FAILOVER_CONTAINER).getPageBlobClient(blobName);
}

/** One disk being prepared: where it comes from and where it goes. */
export interface FailoverDiskCopy {
    diskId: string;
    /** Blob in container `failover`. */
    blobName: string;
    /** Source: replica blob and snapshot id. */
    sourceBlobName: string;
    sourceSnapshot: string;
}

export type CopyState = 'pending' | 'success' | 'failed';

export interface FailoverDiskStatus extends FailoverDiskCopy {
    state: CopyState;
    /** Bytes copied so far / in all, when the service reports them. */
    copiedBytes?: number;
    totalBytes?: number;
    /** The blob's URL (no SAS): what a managed disk imports. */
    url: string;
    detail?: string;
}

/** The copies a recovery point needs (pure). */
export function plannedCopies(point: RecoveryPoint, drillId: string): FailoverDiskCopy[] {
    return Object.entries(point.disks)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([diskId, s]) => ({
            diskId,
            blobName: failoverBlobName(point.vmId, drillId, diskId),
            sourceBlobName: s.blobName,
            sourceSnapshot: s.snapshot,
        }));
}

/**
 * A URL that reads one snapshot: an account-key SAS with a key, a user-delegation SAS with an identity. Its
 * validity is wall-clock time, the storage service's, never a test's or an orchestration's clock.
 */
async function snapshotReadUrl(conn: StorageConnection, copy: FailoverDiskCopy): Promise<string> {
    const source = replicaPageBlob(conn.blob, copy.sourceBlobName);
    const { url } = await readOnlyUrl(
        conn,
        source.containerName,
        copy.sourceBlobName,
        SNAPSHOT_SAS_HOURS * 60,
        blobSnapshotId(copy.sourceSnapshot),
    );
    return url;
}

function copySourceMatches(copySource: string | undefined, copy: FailoverDiskCopy): boolean {
    if (!copySource) return false;
    const url = new URL(copySource);
    return (
        decodeURIComponent(url.pathname).endsWith(`/${copy.sourceBlobName}`) &&
        url.searchParams.get('snapshot') === blobSnapshotId(copy.sourceSnapshot)
    );
}

/**
 * Starts the copy of each disk unless it already runs or ran from the same snapshot (a retried activity starts
 * nothing twice). A destination that holds a failed or foreign copy is replaced. REPLICA_NOT_FOUND when a
 * snapshot is gone (retention pruned the point after it was chosen).
 */
export async function startFailoverDiskCopies(
    conn: StorageConnection,
    copies: readonly FailoverDiskCopy[],
): Promise<void> {
    await conn.blob.getContainerClient(FAILOVER_CONTAINER).createIfNotExists({ abortSignal: deadline() });
    for (const copy of copies) {
        const target = failoverPageBlob(conn.blob, copy.blobName);
        const existing = await target.getProperties({ abortSignal: deadline() }).catch((err: unknown) => {
            if (err instanceof RestError && err.statusCode === 404) return undefined;
            throw err;
        });
        if (existing && copySourceMatches(existing.copySource, copy) && existing.copyStatus !== 'failed') {
            if (existing.copyStatus !== 'aborted') continue;
        }
        if (existing) await target.deleteIfExists({ abortSignal: deadline() });
        const source = replicaPageBlob(conn.blob, copy.sourceBlobName).withSnapshot(
            blobSnapshotId(copy.sourceSnapshot),
        );
        const exists = await source.exists({ abortSignal: deadline() });
        if (!exists) {
            throw new HvrError(
                'REPLICA_NOT_FOUND',
                `Snapshot ${copy.sourceSnapshot} of ${copy.sourceBlobName} no longer exists; choose another recovery point.`,
                { blobName: copy.sourceBlobName, snapshot: copy.sourceSnapshot },
            );
        }
        // The poller's first poll starts the copy; its progress is read later by failoverDiskCopyStatus, so a
        // long copy never holds an activity open.
        await target.beginCopyFromURL(await snapshotReadUrl(conn, copy), { abortSignal: deadline() });
    }
}

/**
 * Where each copy stands. A finished copy is checked before it counts: same length as its snapshot, and a valid
 * fixed-VHD footer at the end (what Azure's disk import requires). A copy that fails either check is `failed`.
 */
export async function failoverDiskCopyStatus(
    conn: StorageConnection,
    copies: readonly FailoverDiskCopy[],
): Promise<FailoverDiskStatus[]> {
    const out: FailoverDiskStatus[] = [];
    for (const copy of copies) {
        const target = failoverPageBlob(conn.blob, copy.blobName);
        const base = { ...copy, url: target.url };
        let props;
        try {
            props = await target.getProperties({ abortSignal: deadline() });
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 404) {
                out.push({ ...base, state: 'failed', detail: `${copy.blobName} does not exist (copy never started).` });
                continue;
            }
            throw err;
        }
        const [copied, total] = (props.copyProgress ?? '').split('/').map(Number);
        const progress =
            Number.isFinite(copied) && Number.isFinite(total) ? { copiedBytes: copied, totalBytes: total } : {};
        if (props.copyStatus === 'pending') {
            out.push({ ...base, ...progress, state: 'pending' });
            continue;
        }
        if (props.copyStatus !== undefined && props.copyStatus !== 'success') {
            out.push({
                ...base,
                ...progress,
                state: 'failed',
                detail: `copy ${props.copyStatus}: ${props.copyStatusDescription ?? 'no description'}`,
            });
            continue;
        }
        out.push({ ...base, ...progress, ...(await verifyFailoverDisk(conn, copy, target, props.contentLength)) });
    }
    return out;
}

async function verifyFailoverDisk(
    conn: StorageConnection,
    copy: FailoverDiskCopy,
    target: PageBlobClient,
    length: number | undefined,
): Promise<{ state: CopyState; detail?: string }> {
    const source = replicaPageBlob(conn.blob, copy.sourceBlobName).withSnapshot(blobSnapshotId(copy.sourceSnapshot));
    const sourceProps = await source.getProperties({ abortSignal: deadline() });
    if (length === undefined || length !== sourceProps.contentLength || length < VHD_FOOTER_SIZE) {
        return {
            state: 'failed',
            detail: `${copy.blobName} is ${length ?? '?'} bytes; its snapshot is ${sourceProps.contentLength ?? '?'}.`,
        };
    }
    const footer = await target.downloadToBuffer(length - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE, {
        abortSignal: deadline(),
    });
    try {
        decodeVhdFooter(footer);
    } catch (err) {
        return { state: 'failed', detail: `${copy.blobName} has no valid fixed-VHD footer: ${(err as Error).message}` };
    }
    return { state: 'success' };
}

/** Deletes the drill's failover blobs (absent ones are fine). Returns the names it deleted. */
export async function deleteFailoverDisks(conn: StorageConnection, blobNames: readonly string[]): Promise<string[]> {
    const deleted: string[] = [];
    for (const name of blobNames) {
        const target = failoverPageBlob(conn.blob, name);
        // A copy still running must be aborted before its blob can go.
        const props = await target.getProperties({ abortSignal: deadline() }).catch((err: unknown) => {
            if (err instanceof RestError && err.statusCode === 404) return undefined;
            throw err;
        });
        if (!props) continue;
        if (props.copyStatus === 'pending' && props.copyId) {
            await target.abortCopyFromURL(props.copyId, { abortSignal: deadline() }).catch(() => undefined);
        }
        const result = await target.deleteIfExists({ deleteSnapshots: 'include', abortSignal: deadline() });
        if (result.succeeded) deleted.push(name);
    }
    return deleted;
}

/** Every failover blob of a drill, found by prefix: what cleanup removes even if the drill record missed one. */
export async function listFailoverDisks(conn: StorageConnection, vmId: string, drillId: string): Promise<string[]> {
    const container = conn.blob.getContainerClient(FAILOVER_CONTAINER);
    if (!(await container.exists({ abortSignal: deadline() }))) return [];
    const names: string[] = [];
    for await (const item of container.listBlobsFlat({ prefix: `${vmId}/${drillId}/`, abortSignal: deadline() })) {
        names.push(item.name);
    }
    return names;
}
