import { createReplicaDisk, replicaBlobName, replicaPageBlob } from '../../../shared/replica/replicaDisk';
import { createProtectedItem } from '../../../shared/state/protectedItems';
import { createRecoveryPoint, recoveryPointId } from '../../../shared/state/recoveryPoints';
import type { EngineHarness } from './engineHarness';
import { LifecycleHarness, protectedVmRow, sampleVm } from './harness';

/** What the seed helpers need of a harness (either one): its tables and blobs, its clock and the API. */
export type FailoverHarness = Pick<EngineHarness, 'scope' | 'now' | 'seedSiteAndPolicy' | 'http'>;

const MiB = 1024 * 1024;
export const SUB = '11111111-2222-3333-4444-555555555555';
export const VNET = `/subscriptions/${SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/prod`;

export const FAILOVER_DISKS = [
    { diskId: 'data', sizeBytes: 1 * MiB, logicalSectorBytes: 512, isOsDisk: false },
    { diskId: 'os', sizeBytes: 2 * MiB, logicalSectorBytes: 512, isOsDisk: true },
];

/**
 * A recovery point as the merge leaves it: every disk's replica takes the cycle's bytes (its first 4 KiB filled
 * with `fill`), is snapshotted, and the point names the snapshots. `capturedAt` defaults to the clock.
 */
export async function addRecoveryPoint(
    h: FailoverHarness,
    vmId: string,
    cycleId: string,
    fill: number,
    sequence: number,
    options: { capturedAt?: string; consistency?: 'CrashConsistent' | 'AppConsistent' } = {},
): Promise<void> {
    const disks: Record<string, { blobName: string; snapshot: string; sequence: number }> = {};
    for (const d of FAILOVER_DISKS) {
        const page = replicaPageBlob(h.scope.conn.blob, replicaBlobName(vmId, d.diskId));
        await page.uploadPages(Buffer.alloc(4096, fill), 0, 4096);
        const snap = await page.createSnapshot();
        disks[d.diskId] = { blobName: page.name, snapshot: snap.snapshot!, sequence };
    }
    await createRecoveryPoint(h.scope, {
        vmId,
        cycleId,
        recoveryPointId: recoveryPointId(vmId, cycleId),
        consistency: options.consistency ?? 'CrashConsistent',
        capturedAt: options.capturedAt ?? h.now().toISOString(),
        createdAt: h.now().toISOString(),
        disks,
    });
}

/** A protected VM (disks `os` and `data`) on site1 with one recovery point per cycle, 5 minutes apart. */
export async function seedFailoverVm(
    h: FailoverHarness,
    vmId: string,
    cycles: readonly (readonly [string, number])[],
): Promise<void> {
    await h.seedSiteAndPolicy();
    const vm = sampleVm(vmId, { disks: FAILOVER_DISKS });
    const at = h.now().toISOString();
    await createProtectedItem(h.scope, protectedVmRow(vmId, at, { disks: vm.disks }));
    for (const d of vm.disks) {
        await createReplicaDisk(h.scope.conn.blob, {
            vmId,
            diskId: d.diskId,
            sizeBytes: d.sizeBytes,
            createdAt: h.now(),
        });
    }
    for (const [i, [cycleId, fill]] of cycles.entries()) {
        await addRecoveryPoint(h, vmId, cycleId, fill, i + 1, {
            capturedAt: new Date(h.now().getTime() - (cycles.length - i) * 300_000).toISOString(),
        });
    }
}

/** Maps site1's network Corp to the production VNet (subnets default, Corp). */
export async function mapCorp(h: FailoverHarness): Promise<void> {
    const mapped = await h.http('apiNetworkMappings', {
        method: 'PUT',
        path: 'sites/site1/networkMappings/Corp',
        params: { siteId: 'site1', sourceNetwork: 'Corp' },
        body: { recoveryVnetId: VNET, recoverySubnets: ['default', 'Corp'] },
    });
    if (mapped.status !== 200) throw new Error(`network mapping: ${JSON.stringify(mapped.jsonBody)}`);
}

export async function waitForInstance(h: LifecycleHarness, instanceId: string): Promise<void> {
    await h.runtime.advanceUntil(async () =>
        ['Completed', 'Failed'].includes((await h.runtime.getStatus(instanceId))?.runtimeStatus ?? ''),
    );
}

export async function action(
    h: FailoverHarness,
    vmId: string,
    name: string,
    body?: unknown,
): ReturnType<FailoverHarness['http']> {
    return h.http('apiFailoverAction', {
        method: 'POST',
        path: `replicationProtectedItems/${vmId}/${name}`,
        params: { vmId, action: name },
        ...(body !== undefined ? { body } : {}),
    });
}
