import { randomBytes } from 'node:crypto';
import { RestError } from '@azure/core-rest-pipeline';
import { TableClient } from '@azure/data-tables';
import { HvrError } from '../errors';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError, tableFor } from '../state/tables';
import { newSiteKey } from './signature';

/**
 * Which site owns a VM. The channel rejects any command that names a VM of another site.
 * The default reads this module's `providerSites` table (rows written by `assignVm` when replication is
 * enabled); it can later be pointed at the protected-items table, which also knows each VM's site.
 */
export interface VmOwnership {
    siteOf(vmId: string): Promise<string | undefined>;
}

export interface SiteKey {
    keyId: string;
    key: Buffer;
    revoked: boolean;
}

/**
 * Where site keys live. Locally (and in this default) a row of the `providerSites` table; in Azure the same
 * interface is meant to read Key Vault secrets named `site-{siteId}-{keyId}`.
 */
export interface SiteKeyStore {
    siteKey(siteId: string, keyId: string): Promise<SiteKey | undefined>;
}

export interface SeenMessage {
    seenAt: Date;
    /** The broker's sequence number of the delivery that was processed; a redelivery carries the same one. */
    sequenceNumber?: string;
}

/** Processed message ids per site, long enough to cover the freshness window. */
export interface ReplayWindow {
    seen(siteId: string, messageId: string): Promise<SeenMessage | undefined>;
    remember(siteId: string, messageId: string, seen: SeenMessage): Promise<void>;
}

export interface ProviderRegistration {
    providerId: string;
    kind: string;
    hostName: string;
    providerVersion: string;
}

/** Where the channel notes which providers a site has and when each last spoke. */
export interface ProviderPresence {
    recordRegistration(siteId: string, registration: ProviderRegistration, at: Date): Promise<void>;
    /**
     * Records a heartbeat. Returns true when the VMs' monitors are due to hear of the provider again: its last
     * forwarded heartbeat is `monitorIntervalMs` old or more (or there was none), and records that it now is.
     */
    recordHeartbeat(
        siteId: string,
        providerId: string,
        at: Date,
        vmCount: number,
        pendingLogBytes: number,
        monitorIntervalMs: number,
    ): Promise<boolean>;
}

/** A provider as the site's presence rows record it (registration, then each heartbeat). */
export interface ProviderStatus {
    providerId: string;
    kind?: string;
    hostName?: string;
    providerVersion?: string;
    registeredAt?: string;
    lastHeartbeatAt?: string;
    /** The last heartbeat that was passed on to the monitors of the provider's VMs. */
    monitorsNotifiedAt?: string;
    vmCount?: number;
    pendingLogBytes?: number;
}

export interface SiteRecord {
    siteId: string;
    name: string;
    timeZone: string;
    registeredAt: string;
    activeKeyId: string;
}

/** A key handed to a provider once, at site registration or rotation. */
export interface IssuedSiteKey {
    siteId: string;
    keyId: string;
    /** base64 of the 32 key bytes. */
    key: string;
}

export interface ProviderSitesTableNames {
    sites: string;
    messageIds: string;
}

export const DEFAULT_PROVIDER_SITES_TABLES: ProviderSitesTableNames = {
    sites: 'providerSites',
    messageIds: 'providerMessageIds',
};

const SITE_PARTITION = 'site';
const VM_PARTITION = 'vm';
const keyPartition = (siteId: string) => `key:${encodeKey(siteId)}`;
const providerPartition = (siteId: string) => `provider:${encodeKey(siteId)}`;

function newKeyId(at: Date): string {
    const stamp = at.toISOString().replace(/[-:]/g, '').slice(0, 15);
    return `k${stamp}-${randomBytes(3).toString('hex')}`;
}

/**
 * Site registrations, site keys, VM→site assignments, provider presence and the replay window, in two tables.
 * One class so the local host and tests wire a single object; each concern is a separate interface above.
 */
export class ProviderSitesTable implements VmOwnership, SiteKeyStore, ReplayWindow, ProviderPresence {
    constructor(
        private readonly conn: StorageConnection,
        private readonly names: ProviderSitesTableNames = DEFAULT_PROVIDER_SITES_TABLES,
    ) {}

    private sites(): Promise<TableClient> {
        return tableFor(this.conn, this.names.sites);
    }

    private messageIds(): Promise<TableClient> {
        return tableFor(this.conn, this.names.messageIds);
    }

    /** Registers a site and issues its first key. Fails with CONFLICT if the site exists. */
    async registerSite(site: { siteId: string; name: string; timeZone: string }, at: Date): Promise<IssuedSiteKey> {
        const table = await this.sites();
        const keyId = newKeyId(at);
        const key = newSiteKey();
        const entity = {
            partitionKey: SITE_PARTITION,
            rowKey: encodeKey(site.siteId),
            siteId: site.siteId,
            name: site.name,
            timeZone: site.timeZone,
            registeredAt: at.toISOString(),
            activeKeyId: keyId,
        };
        assertEntityWithinLimits(entity);
        try {
            await table.createEntity(entity, { abortSignal: deadline() });
        } catch (err) {
            throw mapTableError(err, `Site ${site.siteId}`);
        }
        await this.storeKey(table, site.siteId, keyId, key, at);
        return { siteId: site.siteId, keyId, key: key.toString('base64') };
    }

    async getSite(siteId: string): Promise<SiteRecord | undefined> {
        const row = await getEntityOrUndefined<SiteRecord>(await this.sites(), SITE_PARTITION, encodeKey(siteId));
        if (!row) return undefined;
        return {
            siteId: row.siteId,
            name: row.name,
            timeZone: row.timeZone,
            registeredAt: row.registeredAt,
            activeKeyId: row.activeKeyId,
        };
    }

    /**
     * Issues a new key and makes it the active one. The old key keeps verifying until `revokeSiteKey`, so
     * providers can switch without losing messages in flight.
     */
    async rotateSiteKey(siteId: string, at: Date): Promise<IssuedSiteKey> {
        const table = await this.sites();
        const site = await getEntityOrUndefined<SiteRecord>(table, SITE_PARTITION, encodeKey(siteId));
        if (!site) throw new HvrError('NOT_FOUND', `Site ${siteId} is not registered.`);
        const keyId = newKeyId(at);
        const key = newSiteKey();
        await this.storeKey(table, siteId, keyId, key, at);
        try {
            await table.updateEntity(
                { partitionKey: SITE_PARTITION, rowKey: encodeKey(siteId), activeKeyId: keyId },
                'Merge',
                { etag: site.etag, abortSignal: deadline() },
            );
        } catch (err) {
            throw mapTableError(err, `Site ${siteId}`);
        }
        return { siteId, keyId, key: key.toString('base64') };
    }

    /** Stops a key from verifying anything. */
    async revokeSiteKey(siteId: string, keyId: string, at: Date): Promise<void> {
        const table = await this.sites();
        try {
            await table.updateEntity(
                { partitionKey: keyPartition(siteId), rowKey: encodeKey(keyId), revokedAt: at.toISOString() },
                'Merge',
                { abortSignal: deadline() },
            );
        } catch (err) {
            throw mapTableError(err, `Key ${keyId} of site ${siteId}`);
        }
    }

    private async storeKey(table: TableClient, siteId: string, keyId: string, key: Buffer, at: Date): Promise<void> {
        await table.createEntity(
            {
                partitionKey: keyPartition(siteId),
                rowKey: encodeKey(keyId),
                key: key.toString('base64'),
                createdAt: at.toISOString(),
            },
            { abortSignal: deadline() },
        );
    }

    async siteKey(siteId: string, keyId: string): Promise<SiteKey | undefined> {
        const row = await getEntityOrUndefined<{ key: string; revokedAt?: string }>(
            await this.sites(),
            keyPartition(siteId),
            encodeKey(keyId),
        );
        if (!row) return undefined;
        return { keyId, key: Buffer.from(row.key, 'base64'), revoked: row.revokedAt !== undefined };
    }

    /**
     * Records that `vmId` belongs to `siteId` (the enable-protection flow calls this before StartReplication).
     * Idempotent for the same site; CONFLICT if the VM is already another site's.
     */
    async assignVm(vmId: string, siteId: string, at: Date): Promise<void> {
        const table = await this.sites();
        try {
            await table.createEntity(
                { partitionKey: VM_PARTITION, rowKey: encodeKey(vmId), vmId, siteId, registeredAt: at.toISOString() },
                { abortSignal: deadline() },
            );
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 409) {
                const owner = await this.siteOf(vmId);
                if (owner === siteId) return;
                throw new HvrError('CONFLICT', `VM ${vmId} already belongs to site ${owner ?? '(unknown)'}.`, {
                    vmId,
                    siteId: owner,
                });
            }
            throw mapTableError(err, `VM ${vmId}`);
        }
    }

    /** Forgets a VM's site (protection disabled). */
    async releaseVm(vmId: string): Promise<void> {
        const table = await this.sites();
        try {
            await table.deleteEntity(VM_PARTITION, encodeKey(vmId), { abortSignal: deadline() });
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 404) return;
            throw mapTableError(err, `VM ${vmId}`);
        }
    }

    async siteOf(vmId: string): Promise<string | undefined> {
        const row = await getEntityOrUndefined<{ siteId: string }>(await this.sites(), VM_PARTITION, encodeKey(vmId));
        return row?.siteId;
    }

    async seen(siteId: string, messageId: string): Promise<SeenMessage | undefined> {
        const row = await getEntityOrUndefined<{ seenAt: string; sequenceNumber?: string }>(
            await this.messageIds(),
            encodeKey(siteId),
            encodeKey(messageId),
        );
        if (!row) return undefined;
        return { seenAt: new Date(row.seenAt), sequenceNumber: row.sequenceNumber };
    }

    async remember(siteId: string, messageId: string, seen: SeenMessage): Promise<void> {
        const table = await this.messageIds();
        await table.upsertEntity(
            {
                partitionKey: encodeKey(siteId),
                rowKey: encodeKey(messageId),
                seenAt: seen.seenAt.toISOString(),
                ...(seen.sequenceNumber !== undefined ? { sequenceNumber: seen.sequenceNumber } : {}),
            },
            'Replace',
            { abortSignal: deadline() },
        );
    }

    /**
     * Deletes remembered ids older than `before` for one site. Safe once `before` is older than the freshness
     * window: a message that old is rejected as stale before the replay window is consulted.
     */
    async pruneReplayWindow(siteId: string, before: Date): Promise<number> {
        const table = await this.messageIds();
        let deleted = 0;
        const filter = `PartitionKey eq '${encodeKey(siteId).replace(/'/g, "''")}' and seenAt lt '${before.toISOString()}'`;
        for await (const row of table.listEntities({ queryOptions: { filter, select: ['RowKey'] } })) {
            await table.deleteEntity(row.partitionKey ?? encodeKey(siteId), row.rowKey ?? '', {
                abortSignal: deadline(),
            });
            deleted++;
        }
        return deleted;
    }

    async recordRegistration(siteId: string, registration: ProviderRegistration, at: Date): Promise<void> {
        const table = await this.sites();
        await table.upsertEntity(
            {
                partitionKey: providerPartition(siteId),
                rowKey: encodeKey(registration.providerId),
                ...registration,
                registeredAt: at.toISOString(),
            },
            'Merge',
            { abortSignal: deadline() },
        );
    }

    async recordHeartbeat(
        siteId: string,
        providerId: string,
        at: Date,
        vmCount: number,
        pendingLogBytes: number,
        monitorIntervalMs: number,
    ): Promise<boolean> {
        const table = await this.sites();
        const partitionKey = providerPartition(siteId);
        const rowKey = encodeKey(providerId);
        const row = await getEntityOrUndefined<{ monitorsNotifiedAt?: string }>(table, partitionKey, rowKey);
        const last = row?.monitorsNotifiedAt !== undefined ? Date.parse(row.monitorsNotifiedAt) : NaN;
        const notify = !(at.getTime() - last < monitorIntervalMs);
        await table.upsertEntity(
            {
                partitionKey,
                rowKey,
                providerId,
                lastHeartbeatAt: at.toISOString(),
                ...(notify ? { monitorsNotifiedAt: at.toISOString() } : {}),
                vmCount,
                pendingLogBytes,
            },
            'Merge',
            { abortSignal: deadline() },
        );
        return notify;
    }

    /** The providers of a site: what each registered as and when it last spoke. */
    async listProviders(siteId: string): Promise<ProviderStatus[]> {
        const table = await this.sites();
        const out: ProviderStatus[] = [];
        const filter = `PartitionKey eq '${providerPartition(siteId).replace(/'/g, "''")}'`;
        for await (const row of table.listEntities<Record<string, unknown>>({
            queryOptions: { filter },
            abortSignal: deadline(),
        })) {
            const provider: ProviderStatus = { providerId: row.providerId as string };
            for (const key of ['kind', 'hostName', 'providerVersion', 'registeredAt', 'lastHeartbeatAt'] as const) {
                if (typeof row[key] === 'string') provider[key] = row[key];
            }
            for (const key of ['vmCount', 'pendingLogBytes'] as const) {
                if (typeof row[key] === 'number') provider[key] = row[key];
            }
            out.push(provider);
        }
        return out;
    }
}
