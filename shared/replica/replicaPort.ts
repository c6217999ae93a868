import { RestError } from '@azure/core-rest-pipeline';
import { REPLICA_DISKS_TABLE } from '../state/disks';
import { StateScope, stateTable } from '../state/protectedItems';
import { deleteRecoveryPoint, listRecoveryPoints } from '../state/recoveryPoints';
import { encodeKey } from '../state/tables';
import { deadline } from '../storage/deadline';
import { VmDiskDescription } from '../supportMatrix';
import { REPLICAS_CONTAINER } from './logBlob';
import { registerReplicaDisk, replicaBlobName } from './replicaDisk';

/** The replica side of a replication relationship, as the lifecycle activities reach it (the `replicas` port). */
export interface ReplicaPort {
    /** Checks that the replica storage can take this VM's disks (ASR's "Identifying the replication target"). */
    identifyTarget(input: { vmId: string; siteId: string }): Promise<{ target: string }>;
    /**
     * Creates one disk's replica (page blob + disk row). Idempotent: an existing identical replica is kept.
     * `createdAt` is the orchestration's time, so a retry writes the same bytes.
     */
    createReplicaDisk(input: {
        vmId: string;
        siteId: string;
        disk: VmDiskDescription;
        createdAt: string;
    }): Promise<void>;
    /** Deletes a VM's replica disks, their snapshots (recovery points) and their rows. Idempotent. */
    removeReplica(input: { vmId: string; diskIds: string[] }): Promise<void>;
}

function isNotFound(err: unknown): boolean {
    return err instanceof RestError && err.statusCode === 404;
}

/**
 * The replica side over the merge's modules: replica page blobs with their fixed-VHD footer and disk rows
 * (replicaDisk.ts), recovery points (shared/state/recoveryPoints.ts). Everything is idempotent.
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
