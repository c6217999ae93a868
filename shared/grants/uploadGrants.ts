import {
    BlobSASPermissions,
    generateBlobSASQueryParameters,
    SASProtocol,
    StorageSharedKeyCredential,
    UserDelegationKey,
} from '@azure/storage-blob';
import { HvrError } from '../errors';
import { logBlobName, REPLICA_LOGS_CONTAINER } from '../contracts/blobNames';
import { UploadGrantItem } from '../contracts/messages';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';

/** One log a provider wants to upload, already checked to be a VM of `siteId`. */
export interface UploadTarget {
    siteId: string;
    vmId: string;
    diskId: string;
    sequence: number;
    logId: string;
}

/** Issues write-only upload URLs. The command handler reaches it through this port. */
export interface UploadGrantIssuer {
    issue(targets: UploadTarget[], at: Date): Promise<UploadGrantItem[]>;
}

export interface BlobUploadGrantOptions {
    /** How long a grant stays usable. A large log that takes longer asks again for the same path. */
    ttlMinutes?: number;
    container?: string;
}

export const DEFAULT_GRANT_TTL_MINUTES = 30;
/** Tolerated clock difference between Azure Storage and us: the grant starts this much before now. */
const CLOCK_SKEW_MS = 5 * 60_000;
/** A user delegation key is fetched for this long and reused for every grant it covers. */
const DELEGATION_KEY_LIFETIME_MS = 6 * 3_600_000;

/** Only create and write: a grant cannot read, list or delete anything, not even its own blob. */
export const GRANT_PERMISSIONS = 'cw';

/**
 * Upload grants as blob SAS URLs scoped to exactly one blob (`sr=b`), create+write only, short-lived.
 * With a managed identity (Azure) they are user-delegation SAS (the identity needs Storage Blob Delegator on
 * the account and Storage Blob Data Contributor to sign with it); with an account key (Azurite) they are
 * service SAS signed with that key.
 */
export class BlobUploadGrants implements UploadGrantIssuer {
    private readonly ttlMs: number;
    private readonly container: string;
    private delegationKey?: { key: UserDelegationKey; validUntil: number };

    constructor(
        private readonly conn: StorageConnection,
        options: BlobUploadGrantOptions = {},
    ) {
        const ttlMinutes = options.ttlMinutes ?? DEFAULT_GRANT_TTL_MINUTES;
        if (!Number.isInteger(ttlMinutes) || ttlMinutes < 1 || ttlMinutes > 24 * 60) {
            throw new HvrError('CONFIG_MISSING', `Upload grant lifetime must be 1–1440 minutes, got ${ttlMinutes}.`);
        }
        this.ttlMs = ttlMinutes * 60_000;
        this.container = options.container ?? REPLICA_LOGS_CONTAINER;
    }

    async issue(targets: UploadTarget[], at: Date): Promise<UploadGrantItem[]> {
        // SAS times have whole seconds; round here so the grant states exactly what the signature allows.
        const startsOn = new Date(Math.floor((at.getTime() - CLOCK_SKEW_MS) / 1000) * 1000);
        const expiresOn = new Date(Math.floor((at.getTime() + this.ttlMs) / 1000) * 1000);
        const sign = await this.signer(startsOn, expiresOn);
        const containerClient = this.conn.blob.getContainerClient(this.container);
        const protocol = containerClient.url.startsWith('https:') ? SASProtocol.Https : SASProtocol.HttpsAndHttp;
        return targets.map((t) => {
            const blobName = logBlobName(t);
            const sas = sign({
                containerName: this.container,
                blobName,
                permissions: BlobSASPermissions.parse(GRANT_PERMISSIONS),
                startsOn,
                expiresOn,
                protocol,
            });
            return {
                diskId: t.diskId,
                sequence: t.sequence,
                logId: t.logId,
                blobPath: `${this.container}/${blobName}`,
                url: `${containerClient.getBlockBlobClient(blobName).url}?${sas}`,
                expiresOn: expiresOn.toISOString(),
            };
        });
    }

    private async signer(
        startsOn: Date,
        expiresOn: Date,
    ): Promise<(values: Parameters<typeof generateBlobSASQueryParameters>[0]) => string> {
        const accountKey = this.conn.accountKey;
        if (accountKey) {
            const credential = new StorageSharedKeyCredential(accountKey.accountName, accountKey.accountKey);
            return (values) => generateBlobSASQueryParameters(values, credential).toString();
        }
        const key = await this.userDelegationKey(startsOn, expiresOn);
        const accountName = this.conn.blob.accountName;
        return (values) => generateBlobSASQueryParameters(values, key, accountName).toString();
    }

    private async userDelegationKey(startsOn: Date, expiresOn: Date): Promise<UserDelegationKey> {
        const cached = this.delegationKey;
        if (cached && cached.validUntil >= expiresOn.getTime() && cached.key.signedStartsOn <= startsOn) {
            return cached.key;
        }
        const keyExpires = new Date(Math.max(expiresOn.getTime(), startsOn.getTime() + DELEGATION_KEY_LIFETIME_MS));
        try {
            const response = await this.conn.blob.getUserDelegationKey(startsOn, keyExpires, {
                abortSignal: deadline(),
            });
            this.delegationKey = { key: response, validUntil: keyExpires.getTime() };
            return response;
        } catch (err) {
            const status = (err as { statusCode?: number }).statusCode;
            if (status === 403) {
                throw new HvrError(
                    'FORBIDDEN',
                    'Cannot get a user delegation key: the app identity needs the Storage Blob Delegator role.',
                    { statusCode: 403 },
                    { cause: err },
                );
            }
            throw err;
        }
    }
}
