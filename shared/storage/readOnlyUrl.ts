import {
    BlobSASPermissions,
    generateBlobSASQueryParameters,
    SASProtocol,
    StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { systemClock } from '../ports';
import { StorageConnection } from './connections';
import { deadline } from './deadline';

/** A read-only SAS URL for one blob (or one snapshot), valid in the storage service's time, not a test clock's. */
export function readOnlyUrl(
    conn: StorageConnection,
    containerName: string,
    blobName: string,
    minutes: number,
    snapshot?: string,
): Promise<{ url: string; expiresOn: string }> {
    return blobSasUrl(conn, containerName, blobName, minutes, 'r', snapshot);
}

/**
 * A write-only SAS URL (create + write) for one blob that does not need to be read back by its holder: a
 * provider's failback manifest upload.
 */
export function writeOnlyUrl(
    conn: StorageConnection,
    containerName: string,
    blobName: string,
    minutes: number,
): Promise<{ url: string; expiresOn: string }> {
    return blobSasUrl(conn, containerName, blobName, minutes, 'cw');
}

/** A SAS URL scoped to exactly one blob (`sr=b`) with `permissions`, short-lived. */
async function blobSasUrl(
    conn: StorageConnection,
    containerName: string,
    blobName: string,
    minutes: number,
    permissions: 'r' | 'cw',
    snapshot?: string,
): Promise<{ url: string; expiresOn: string }> {
    const now = systemClock.now().getTime();
    const startsOn = new Date(Math.floor((now - 5 * 60_000) / 1000) * 1000);
    const expiresOn = new Date(Math.floor((now + minutes * 60_000) / 1000) * 1000);
    const container = conn.blob.getContainerClient(containerName);
    const values = {
        containerName,
        blobName,
        permissions: BlobSASPermissions.parse(permissions),
        startsOn,
        expiresOn,
        protocol: container.url.startsWith('https:') ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
        ...(snapshot !== undefined ? { snapshotTime: snapshot } : {}),
    };
    let sas: string;
    if (conn.accountKey) {
        const credential = new StorageSharedKeyCredential(conn.accountKey.accountName, conn.accountKey.accountKey);
        sas = generateBlobSASQueryParameters(values, credential).toString();
    } else {
        const key = await conn.blob.getUserDelegationKey(startsOn, expiresOn, { abortSignal: deadline() });
        sas = generateBlobSASQueryParameters(values, key, conn.blob.accountName).toString();
    }
    const base = container.getBlobClient(blobName);
    const url = snapshot !== undefined ? base.withSnapshot(snapshot).url : base.url;
    return { url: `${url}${url.includes('?') ? '&' : '?'}${sas}`, expiresOn: expiresOn.toISOString() };
}
