import { REPLICA_STORAGE_CONTAINERS } from '../../shared/contracts/blobNames';
import { FAILOVER_CONTAINER } from '../../shared/failover/failoverDisks';
import { StorageConnection } from '../../shared/storage/connections';
import { deadline } from '../../shared/storage/deadline';

/**
 * The containers infra/main.bicep creates in the replica storage account, by their owners' names. In Azure the
 * deployment creates them; locally the host does at start, because a provider's write-only upload grant cannot
 * create a container, and its first upload would fail with "The specified container does not exist".
 */
export const LOCAL_REPLICA_CONTAINERS: readonly string[] = [...REPLICA_STORAGE_CONTAINERS, FAILOVER_CONTAINER];

/** Creates every replica storage container that is missing; returns the ones it created. */
export async function ensureReplicaContainers(conn: StorageConnection, signal?: AbortSignal): Promise<string[]> {
    const created: string[] = [];
    for (const name of LOCAL_REPLICA_CONTAINERS) {
        const result = await conn.blob
            .getContainerClient(name)
            .createIfNotExists({ abortSignal: deadline(undefined, signal) });
        if (result.succeeded) created.push(name);
    }
    return created;
}
