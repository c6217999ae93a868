import { storageReplicaPort } from '../../../shared/replica/replicaPort';
import { REPLICAS_CONTAINER } from '../../../shared/replica/logBlob';
import { getReplicaDisk } from '../../../shared/state/disks';
import { StateScope } from '../../../shared/state/protectedItems';
import { testStorage, uniqueName } from '../../support/azurite';

describe('replica port over the merge modules (Azurite)', () => {
    it('creates replica disks idempotently and removes them with their rows', async () => {
        const scope: StateScope = { conn: testStorage(), tablePrefix: uniqueName('r') };
        const port = storageReplicaPort(() => scope);
        const vmId = uniqueName('vm');
        const disk = { diskId: 'os', sizeBytes: 8 * 1024 * 1024, logicalSectorBytes: 512, isOsDisk: true };
        await port.identifyTarget({ vmId, siteId: 'site1' });
        const createdAt = '2025-03-03T08:00:00.000Z';
        await port.createReplicaDisk({ vmId, siteId: 'site1', disk, createdAt });
        await port.createReplicaDisk({ vmId, siteId: 'site1', disk, createdAt });
        const blob = scope.conn.blob.getContainerClient(REPLICAS_CONTAINER).getPageBlobClient(`${vmId}/os.vhd`);
        expect((await blob.getProperties()).contentLength).toBe(8 * 1024 * 1024 + 512);
        expect((await getReplicaDisk(scope, vmId, 'os'))?.disk).toMatchObject({ state: 'Replicating', sequence: 0 });

        // The resync digest index and its dirty markers live beside the disk and go with it.
        const container = scope.conn.blob.getContainerClient(REPLICAS_CONTAINER);
        await container.getBlockBlobClient(`${vmId}/os.digests`).upload('x', 1);
        await container.getBlockBlobClient(`${vmId}/os.dirty/000000000001`).upload('x', 1);
        await container.getBlockBlobClient(`${vmId}0/os.vhd`).upload('x', 1);

        await port.removeReplica({ vmId, diskIds: ['os'] });
        expect(await blob.exists()).toBe(false);
        const left: string[] = [];
        for await (const b of container.listBlobsFlat({ prefix: vmId })) left.push(b.name);
        expect(left).toEqual([`${vmId}0/os.vhd`]);
        expect(await getReplicaDisk(scope, vmId, 'os')).toBeUndefined();
        await port.removeReplica({ vmId, diskIds: ['os'] });
    });
});
