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
export async function readOnlyUrl(
    conn: StorageConnection,
    containerName: string,
    blobName: string,
    minutes: number,
    snapshot?: string,
): Promise<{ url: string; expiresOn: string }> {
    const now = systemClock.now().getTime();
    const startsOn = new Date(Math.floor((now - 5 * 60_000) / 1000) * 1000);
    const expiresOn = new Date(Math.floor((now + minutes * 60_000) / 1000) * 1000);
    const container = conn.blob.getContainerClient(containerName);
    const values = {
        containerName,
        blobName,
        permissions: BlobSASPermissions.parse('r'),
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
