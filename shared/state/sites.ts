import { RestError } from '@azure/core-rest-pipeline';
import { requireContractId } from '../contracts/ids';
import { HvrError } from '../errors';
import { isValidTimeZone } from '../policy/replicationPolicy';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from './tables';

/** ASR's two ways of grouping Hyper-V hosts: a Hyper-V site, or the clouds of a VMM server. */
export type SiteKind = 'HyperVSite' | 'VmmServer';

/** A registered source of protected VMs; its provider talks to us under this id. */
export interface Site {
    siteId: string;
    name: string;
    kind: SiteKind;
    /** IANA time zone of the site: off-hours windows without their own zone are read in it. */
    timeZone: string;
    registeredAt: string;
    updatedAt: string;
}

export const SITES_TABLE = 'Sites';
const PARTITION = 'site';

function invalid(field: string, value: unknown, rule: string): HvrError {
    return new HvrError('VALIDATION_FAILED', `${field} ${rule}; got ${JSON.stringify(value) ?? 'nothing'}.`, {
        field,
        value,
    });
}

/** Validates a site registration body; `siteIdFromPath` wins when given. */
export function validateSiteRegistration(
    input: unknown,
    siteIdFromPath?: string,
): Pick<Site, 'siteId' | 'name' | 'kind' | 'timeZone'> {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw invalid('body', input, 'must be a JSON object');
    }
    const body = input as Record<string, unknown>;
    const siteId = requireContractId('siteId', siteIdFromPath ?? body.siteId);
    const name = body.name ?? siteId;
    if (typeof name !== 'string' || name.length < 1 || name.length > 256) {
        throw invalid('name', name, 'must be a string of 1–256 characters');
    }
    const kind = body.kind ?? 'HyperVSite';
    if (kind !== 'HyperVSite' && kind !== 'VmmServer')
        throw invalid('kind', kind, 'must be "HyperVSite" or "VmmServer"');
    const timeZone = body.timeZone ?? 'UTC';
    if (typeof timeZone !== 'string' || !isValidTimeZone(timeZone)) {
        throw invalid('timeZone', timeZone, 'must be an IANA time zone such as Europe/Paris');
    }
    return { siteId, name, kind, timeZone };
}

function fromEntity(e: Record<string, unknown>): Site {
    return {
        siteId: e.siteId as string,
        name: e.name as string,
        kind: e.kind as SiteKind,
        timeZone: e.timeZone as string,
        registeredAt: e.registeredAt as string,
        updatedAt: e.updatedAt as string,
    };
}

/** Registers a site, or updates its name, kind and time zone when it exists. */
export async function registerSite(
    scope: StateScope,
    site: Pick<Site, 'siteId' | 'name' | 'kind' | 'timeZone'>,
    at: string,
): Promise<{ site: Site; created: boolean }> {
    const table = await stateTable(scope, SITES_TABLE);
    const existing = await getSite(scope, site.siteId);
    const stored: Site = { ...site, registeredAt: existing?.registeredAt ?? at, updatedAt: at };
    const entity = { partitionKey: PARTITION, rowKey: encodeKey(site.siteId), ...stored };
    assertEntityWithinLimits(entity);
    try {
        if (existing) await table.upsertEntity(entity, 'Replace', { abortSignal: deadline() });
        else await table.createEntity(entity, { abortSignal: deadline() });
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 409) {
            await table.upsertEntity(entity, 'Replace', { abortSignal: deadline() });
            return { site: stored, created: false };
        }
        throw mapTableError(err, `Site ${site.siteId}`);
    }
    return { site: stored, created: !existing };
}

export async function getSite(scope: StateScope, siteId: string): Promise<Site | undefined> {
    const table = await stateTable(scope, SITES_TABLE);
    const e = await getEntityOrUndefined<Record<string, unknown>>(table, PARTITION, encodeKey(siteId));
    return e ? fromEntity(e) : undefined;
}

export async function listSites(scope: StateScope): Promise<Site[]> {
    const table = await stateTable(scope, SITES_TABLE);
    const sites: Site[] = [];
    for await (const e of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${PARTITION}'` },
        abortSignal: deadline(),
    })) {
        sites.push(fromEntity(e));
    }
    return sites.sort((a, b) => a.siteId.localeCompare(b.siteId));
}
