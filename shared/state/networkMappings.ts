import { RestError } from '@azure/core-rest-pipeline';
import { TableEntity } from '@azure/data-tables';
import { NetworkMapping } from '../failover/networkMapping';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from './tables';

export const NETWORK_MAPPINGS_TABLE = 'NetworkMappings';

function toEntity(m: NetworkMapping): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(m.siteId),
        rowKey: encodeKey(m.sourceNetwork.toLowerCase()),
        siteId: m.siteId,
        sourceNetwork: m.sourceNetwork,
        recoveryVnetId: m.recoveryVnetId,
        recoverySubnets: JSON.stringify(m.recoverySubnets),
        updatedAt: m.updatedAt,
    };
    if (m.testVnetId !== undefined) entity.testVnetId = m.testVnetId;
    if (m.testSubnets !== undefined) entity.testSubnets = JSON.stringify(m.testSubnets);
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(e: Record<string, unknown>): NetworkMapping {
    const m: NetworkMapping = {
        siteId: e.siteId as string,
        sourceNetwork: e.sourceNetwork as string,
        recoveryVnetId: e.recoveryVnetId as string,
        recoverySubnets: JSON.parse(e.recoverySubnets as string) as string[],
        updatedAt: e.updatedAt as string,
    };
    if (typeof e.testVnetId === 'string') m.testVnetId = e.testVnetId;
    if (typeof e.testSubnets === 'string') m.testSubnets = JSON.parse(e.testSubnets) as string[];
    return m;
}

/** Creates or replaces the mapping of one source network of a site (network names compare case-insensitively). */
export async function putNetworkMapping(scope: StateScope, mapping: NetworkMapping): Promise<void> {
    const table = await stateTable(scope, NETWORK_MAPPINGS_TABLE);
    try {
        await table.upsertEntity(toEntity(mapping), 'Replace', { abortSignal: deadline() });
    } catch (err) {
        throw mapTableError(err, `Network mapping ${mapping.siteId}/${mapping.sourceNetwork}`);
    }
}

export async function getNetworkMapping(
    scope: StateScope,
    siteId: string,
    sourceNetwork: string,
): Promise<NetworkMapping | undefined> {
    const table = await stateTable(scope, NETWORK_MAPPINGS_TABLE);
    const e = await getEntityOrUndefined<Record<string, unknown>>(
        table,
        encodeKey(siteId),
        encodeKey(sourceNetwork.toLowerCase()),
    );
    return e ? fromEntity(e) : undefined;
}

/** A site's mappings, by source network name. */
export async function listNetworkMappings(scope: StateScope, siteId: string): Promise<NetworkMapping[]> {
    const table = await stateTable(scope, NETWORK_MAPPINGS_TABLE);
    const pk = encodeKey(siteId).replace(/'/g, "''");
    const out: NetworkMapping[] = [];
    for await (const e of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${pk}'` },
        abortSignal: deadline(),
    })) {
        out.push(fromEntity(e));
    }
    return out.sort((a, b) => a.sourceNetwork.localeCompare(b.sourceNetwork));
}

export async function deleteNetworkMapping(scope: StateScope, siteId: string, sourceNetwork: string): Promise<boolean> {
    const table = await stateTable(scope, NETWORK_MAPPINGS_TABLE);
    try {
        await table.deleteEntity(encodeKey(siteId), encodeKey(sourceNetwork.toLowerCase()), {
            abortSignal: deadline(),
        });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw mapTableError(err, `Network mapping ${siteId}/${sourceNetwork}`);
    }
}
