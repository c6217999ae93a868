import { RestError } from '@azure/core-rest-pipeline';
import { REPLICAS_CONTAINER } from '../../shared/replica/logBlob';
import { registerReplicaDisk, replicaBlobName } from '../../shared/replica/replicaDisk';
import { REPLICA_DISKS_TABLE } from '../../shared/state/disks';
import { StateScope, stateTable } from '../../shared/state/protectedItems';
import { deleteRecoveryPoint, listRecoveryPoints } from '../../shared/state/recoveryPoints';
import { encodeKey } from '../../shared/state/tables';
import { deadline } from '../../shared/storage/deadline';
import { ReplicaPort } from './dependencies';

function isNotFound(err: unknown): boolean {
    return err instanceof RestError && err.statusCode === 404;
}

/**
 * The replica side over the merge's modules: replica page blobs with their fixed-VHD footer and disk rows
 * (shared/replica/replicaDisk.ts), recovery points (shared/state/recoveryPoints.ts). Everything is idempotent.
 */
export function storageReplicaPort(scope: () => StateScope): ReplicaPort {
    return {
        async identifyTarget() {
            const container = scope().conn.blob.getContainerClient(REPLICAS_CONTAINER);
            await container.createIfNotExists({ abortSignal: deadline() });
            return { target: container.url };
        },
        async createReplicaDisk({ vmId, siteId, disk, createdAt }) {
            await registerReplicaDisk(scope(), {
                vmId,
                siteId,
                diskId: disk.diskId,
                sizeBytes: disk.sizeBytes,
                createdAt: new Date(createdAt),
            });
        },
        async removeReplica({ vmId, diskIds }) {
            const s = scope();
            const container = s.conn.blob.getContainerClient(REPLICAS_CONTAINER);
            // Everything of the VM's under replicas/{vmId}/: the disks (their recovery-point snapshots go with
            // them), the resync digest indexes and their dirty markers.
            const owned = new Set(diskIds.map((diskId) => replicaBlobName(vmId, diskId)));
            for await (const blob of container.listBlobsFlat({ prefix: `${vmId}/`, abortSignal: deadline() })) {
                owned.add(blob.name);
            }
            for (const name of owned) {
                try {
                    await container.getBlobClient(name).delete({ deleteSnapshots: 'include', abortSignal: deadline() });
                } catch (err) {
                    if (!isNotFound(err)) throw err;
                }
            }
            for (const point of await listRecoveryPoints(s, vmId)) await deleteRecoveryPoint(s, vmId, point.cycleId);
            const disks = await stateTable(s, REPLICA_DISKS_TABLE);
            for (const diskId of diskIds) {
                try {
                    await disks.deleteEntity(encodeKey(vmId), encodeKey(diskId), { abortSignal: deadline() });
                } catch (err) {
                    if (!isNotFound(err)) throw err;
                }
            }
        },
    };
}
