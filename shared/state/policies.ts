import { RestError } from '@azure/core-rest-pipeline';
import { ReplicationPolicy } from '../policy/replicationPolicy';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from './tables';

export const POLICIES_TABLE = 'ReplicationPolicies';
const PARTITION = 'policy';

/** A stored policy with its bookkeeping. */
export interface StoredReplicationPolicy extends ReplicationPolicy {
    createdAt: string;
    updatedAt: string;
    /** Opaque version, for If-Match. */
    etag: string;
}

function fromEntity(e: Record<string, unknown> & { etag?: string }): StoredReplicationPolicy {
    const policy = JSON.parse(e.policy as string) as ReplicationPolicy;
    return { ...policy, createdAt: e.createdAt as string, updatedAt: e.updatedAt as string, etag: e.etag ?? '' };
}

export async function getPolicy(scope: StateScope, name: string): Promise<StoredReplicationPolicy | undefined> {
    const table = await stateTable(scope, POLICIES_TABLE);
    const e = await getEntityOrUndefined<Record<string, unknown>>(table, PARTITION, encodeKey(name));
    return e ? fromEntity(e) : undefined;
}

export async function listPolicies(scope: StateScope): Promise<StoredReplicationPolicy[]> {
    const table = await stateTable(scope, POLICIES_TABLE);
    const policies: StoredReplicationPolicy[] = [];
    for await (const e of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${PARTITION}'` },
        abortSignal: deadline(),
    })) {
        policies.push(fromEntity(e));
    }
    return policies.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Creates or replaces a (validated) policy. With `ifMatch` it replaces only that stored version
 * (CONCURRENT_UPDATE when the policy changed since, NOT_FOUND when it is gone); without, it creates or replaces.
 */
export async function putPolicy(
    scope: StateScope,
    policy: ReplicationPolicy,
    at: string,
    options: { ifMatch?: string } = {},
): Promise<{ policy: StoredReplicationPolicy; created: boolean }> {
    const table = await stateTable(scope, POLICIES_TABLE);
    const existing = await getPolicy(scope, policy.name);
    const entity = {
        partitionKey: PARTITION,
        rowKey: encodeKey(policy.name),
        name: policy.name,
        policy: JSON.stringify(policy),
        createdAt: existing?.createdAt ?? at,
        updatedAt: at,
    };
    assertEntityWithinLimits(entity);
    try {
        let etag: string | undefined;
        if (options.ifMatch !== undefined) {
            etag = (await table.updateEntity(entity, 'Replace', { etag: options.ifMatch, abortSignal: deadline() }))
                .etag;
        } else if (existing) {
            etag = (await table.updateEntity(entity, 'Replace', { etag: existing.etag, abortSignal: deadline() })).etag;
        } else {
            etag = (await table.createEntity(entity, { abortSignal: deadline() })).etag;
        }
        return {
            policy: { ...policy, createdAt: entity.createdAt, updatedAt: at, etag: etag ?? '' },
            created: !existing,
        };
    } catch (err) {
        throw mapTableError(err, `Replication policy ${policy.name}`);
    }
}

export async function deletePolicy(scope: StateScope, name: string): Promise<boolean> {
    const table = await stateTable(scope, POLICIES_TABLE);
    try {
        await table.deleteEntity(PARTITION, encodeKey(name), { abortSignal: deadline() });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw mapTableError(err, `Replication policy ${name}`);
    }
}
