import { StateScope } from '../state/protectedItems';
import { deleteReplicaDiskRecord } from '../state/disks';
import { deleteRecoveryPoint, listRecoveryPoints } from '../state/recoveryPoints';
import { deadline } from '../storage/deadline';
import { REPLICA_LOGS_CONTAINER, REPLICAS_CONTAINER } from './logBlob';
import { registerReplicaDisk, replicaBlobName } from './replicaDisk';

/**
 * The replica side as the lifecycle orchestrations use it (the `ReplicaPort` of orchestrations/lifecycle):
 * structurally the same interface, built over a state scope.
 */
export function replicaPortFor(scope: () => StateScope) {
    return {
        /** The replica storage is reachable and its containers exist. */
        async identifyTarget(input: { vmId: string; siteId: string }): Promise<{ target: string }> {
            const blob = scope().conn.blob;
            for (const name of [REPLICAS_CONTAINER, REPLICA_LOGS_CONTAINER]) {
                await blob.getContainerClient(name).createIfNotExists({ abortSignal: deadline() });
            }
            return { target: `${blob.url.replace(/\/$/, '')}/${REPLICAS_CONTAINER}/${input.vmId}/` };
        },

        async createReplicaDisk(input: {
            vmId: string;
            siteId: string;
            disk: { diskId: string; sizeBytes: number };
            createdAt: string;
        }): Promise<void> {
            await registerReplicaDisk(scope(), {
                vmId: input.vmId,
                siteId: input.siteId,
                diskId: input.disk.diskId,
                sizeBytes: input.disk.sizeBytes,
                createdAt: new Date(input.createdAt),
            });
        },

        /** Recovery points first (their rows, then every snapshot with the blob), then the disk rows. */
        async removeReplica(input: { vmId: string; diskIds: string[] }): Promise<void> {
            const s = scope();
            for (const point of await listRecoveryPoints(s, input.vmId)) {
                await deleteRecoveryPoint(s, input.vmId, point.cycleId);
            }
            const replicas = s.conn.blob.getContainerClient(REPLICAS_CONTAINER);
            for (const diskId of input.diskIds) {
                await replicas
                    .getPageBlobClient(replicaBlobName(input.vmId, diskId))
                    .deleteIfExists({ deleteSnapshots: 'include', abortSignal: deadline() });
                await deleteReplicaDiskRecord(s, input.vmId, diskId);
            }
        },
    };
}
