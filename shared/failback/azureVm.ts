import { ComputeManagementClient } from '@azure/arm-compute';
import { TokenCredential } from '@azure/core-auth';
import { HttpClient, RestError } from '@azure/core-rest-pipeline';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { HvrError } from '../errors';
import { mapArmError, ArmFailoverSettings } from '../failover/armInfrastructure';
import { failoverPageBlob } from '../failover/failoverDisks';
import { ByteSource } from '../hrl/source';
import { openBlobSource } from '../storage/blobSource';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';
import { VHD_FOOTER_SIZE } from '../vhd/footer';
import { FailbackPhase } from './names';

/**
 * The failed-over VM in Azure as a failback sees it, behind a port: its power state, deallocate and start, and a
 * read of each disk. `arm`: the VM through Azure Resource Manager, a disk read through a managed-disk export
 * (grant access gives a read SAS; while the VM runs, of a snapshot of the disk, since an attached disk of a
 * running VM cannot be exported). `dryrun`: the failover page blobs stand in for the disks (a blob snapshot while
 * the VM "runs"), and the power state is a metadata value on the OS disk's blob.
 */
export type AzureVmPowerState = 'running' | 'deallocated' | 'missing' | 'other';

export interface AzureVmRef {
    vmId: string;
    failbackId: string;
    /** The VM's ARM name (drill.machine.name); dryrun ignores it. */
    vmName: string;
    disks: { diskId: string; isOsDisk: boolean; managedDiskName: string; failoverBlob: string }[];
}

/** A readable disk: its data (the fixed VHD without the footer) as a ByteSource. */
export interface AzureDiskRead {
    source: ByteSource;
    /** The page blob it reads (for Get Page Ranges on a full download). */
    blob: PageBlobClient;
}

export interface AzureVmControl {
    readonly mode: 'arm' | 'dryrun';
    powerState(vm: AzureVmRef): Promise<AzureVmPowerState>;
    deallocate(vm: AzureVmRef): Promise<void>;
    start(vm: AzureVmRef): Promise<void>;
    /** Opens disk `diskId` for reading in `phase` (a stable copy while the VM runs); idempotent per phase. */
    openDisk(vm: AzureVmRef, diskId: string, phase: FailbackPhase): Promise<AzureDiskRead>;
    /** Ends the reads of `phase`: revokes the export, deletes the snapshot. Idempotent. */
    releaseDisks(vm: AzureVmRef, phase: FailbackPhase): Promise<void>;
}

/** Metadata on the dry run's OS disk blob that holds the VM's power state. */
export const DRY_RUN_POWER_STATE_KEY = 'hvrpowerstate';

function diskOf(vm: AzureVmRef, diskId: string): AzureVmRef['disks'][number] {
    const disk = vm.disks.find((d) => d.diskId === diskId);
    if (!disk) throw new HvrError('NOT_FOUND', `The VM in Azure for ${vm.vmId} has no disk ${diskId}.`);
    return disk;
}

async function dataSource(blob: PageBlobClient): Promise<ByteSource> {
    const whole = await openBlobSource(blob);
    if (whole.size < VHD_FOOTER_SIZE + 512) {
        throw new HvrError('VALIDATION_FAILED', `disk blob ${blob.name} has ${whole.size} bytes: not a fixed VHD`);
    }
    return { size: whole.size - VHD_FOOTER_SIZE, read: (offset, length, signal) => whole.read(offset, length, signal) };
}

function isNotFound(err: unknown): boolean {
    return err instanceof RestError && err.statusCode === 404;
}

/** The dry run: the failover page blobs are the VM's disks; nothing in Azure is called. */
export class DryRunAzureVmControl implements AzureVmControl {
    readonly mode = 'dryrun' as const;

    constructor(private readonly conn: StorageConnection) {}

    private osBlob(vm: AzureVmRef): PageBlobClient {
        const os = vm.disks.find((d) => d.isOsDisk) ?? vm.disks[0];
        if (!os) throw new HvrError('NOT_FOUND', `The VM in Azure for ${vm.vmId} has no disks.`);
        return failoverPageBlob(this.conn.blob, os.failoverBlob);
    }

    async powerState(vm: AzureVmRef): Promise<AzureVmPowerState> {
        for (const d of vm.disks) {
            const exists = await failoverPageBlob(this.conn.blob, d.failoverBlob).exists({ abortSignal: deadline() });
            if (!exists) return 'missing';
        }
        try {
            const props = await this.osBlob(vm).getProperties({ abortSignal: deadline() });
            return props.metadata?.[DRY_RUN_POWER_STATE_KEY] === 'deallocated' ? 'deallocated' : 'running';
        } catch (err) {
            if (isNotFound(err)) return 'missing';
            throw err;
        }
    }

    private async setPowerState(vm: AzureVmRef, state: 'running' | 'deallocated'): Promise<void> {
        const blob = this.osBlob(vm);
        try {
            const props = await blob.getProperties({ abortSignal: deadline() });
            await blob.setMetadata(
                { ...(props.metadata ?? {}), [DRY_RUN_POWER_STATE_KEY]: state },
                { abortSignal: deadline() },
            );
        } catch (err) {
            if (isNotFound(err))
                throw new HvrError('NOT_FOUND', `The VM in Azure for ${vm.vmId} is missing (dry run).`);
            throw err;
        }
    }

    deallocate(vm: AzureVmRef): Promise<void> {
        return this.setPowerState(vm, 'deallocated');
    }

    start(vm: AzureVmRef): Promise<void> {
        return this.setPowerState(vm, 'running');
    }

    /** Metadata naming the failback a snapshot was taken for, per phase. */
    private snapshotKey(phase: FailbackPhase): string {
        return `hvrfailback${phase.toLowerCase()}`;
    }

    async openDisk(vm: AzureVmRef, diskId: string, phase: FailbackPhase): Promise<AzureDiskRead> {
        const disk = diskOf(vm, diskId);
        const blob = failoverPageBlob(this.conn.blob, disk.failoverBlob);
        if ((await this.powerState(vm)) === 'deallocated') return { blob, source: await dataSource(blob) };
        // A running VM's disk changes under the reads: read a snapshot, one per failback and phase.
        const key = this.snapshotKey(phase);
        let snapshot: string | undefined;
        for await (const item of this.conn.blob.getContainerClient(blob.containerName).listBlobsFlat({
            prefix: disk.failoverBlob,
            includeSnapshots: true,
            includeMetadata: true,
        })) {
            if (item.name === disk.failoverBlob && item.snapshot && item.metadata?.[key] === vm.failbackId) {
                snapshot = item.snapshot;
            }
        }
        if (!snapshot) {
            const props = await blob.getProperties({ abortSignal: deadline() });
            const made = await blob.createSnapshot({
                metadata: { ...(props.metadata ?? {}), [key]: vm.failbackId },
                abortSignal: deadline(),
            });
            snapshot = made.snapshot!;
        }
        const pinned = blob.withSnapshot(snapshot);
        return { blob: pinned, source: await dataSource(pinned) };
    }

    async releaseDisks(vm: AzureVmRef, phase: FailbackPhase): Promise<void> {
        for (const disk of vm.disks) {
            const key = this.snapshotKey(phase);
            const container = this.conn.blob.getContainerClient(
                failoverPageBlob(this.conn.blob, disk.failoverBlob).containerName,
            );
            for await (const item of container.listBlobsFlat({
                prefix: disk.failoverBlob,
                includeSnapshots: true,
                includeMetadata: true,
            })) {
                if (item.name !== disk.failoverBlob || !item.snapshot || item.metadata?.[key] !== vm.failbackId)
                    continue;
                await container
                    .getBlobClient(item.name)
                    .withSnapshot(item.snapshot)
                    .deleteIfExists({ abortSignal: deadline() });
            }
        }
    }
}

export interface ArmAzureVmOptions {
    credential: TokenCredential;
    httpClient?: HttpClient;
    /** How long an export SAS lasts (grant access `durationInSeconds`). */
    exportSeconds?: number;
}

/** The VM and its managed disks through ARM (`@azure/arm-compute`). */
export class ArmAzureVmControl implements AzureVmControl {
    readonly mode = 'arm' as const;
    private readonly compute: ComputeManagementClient;
    private readonly exportSeconds: number;

    constructor(
        private readonly settings: ArmFailoverSettings,
        options: ArmAzureVmOptions,
    ) {
        this.compute = new ComputeManagementClient(
            options.credential,
            settings.subscriptionId,
            options.httpClient ? { httpClient: options.httpClient } : {},
        );
        this.exportSeconds = options.exportSeconds ?? 3600;
    }

    private signal(): { abortSignal: AbortSignal } {
        return { abortSignal: deadline(this.settings.operationTimeoutMs) };
    }

    private async call<T>(what: string, body: () => Promise<T>): Promise<T> {
        try {
            return await body();
        } catch (err) {
            throw mapArmError(err, what);
        }
    }

    async powerState(vm: AzureVmRef): Promise<AzureVmPowerState> {
        try {
            const view = await this.compute.virtualMachines.instanceView(
                this.settings.resourceGroup,
                vm.vmName,
                this.signal(),
            );
            const code = view.statuses?.find((s) => s.code?.startsWith('PowerState/'))?.code;
            if (code === 'PowerState/running' || code === 'PowerState/starting') return 'running';
            if (code === 'PowerState/deallocated') return 'deallocated';
            return 'other';
        } catch (err) {
            if (isNotFound(err)) return 'missing';
            throw mapArmError(err, `Read the power state of VM ${vm.vmName}`);
        }
    }

    async deallocate(vm: AzureVmRef): Promise<void> {
        await this.call(`Deallocate VM ${vm.vmName}`, () =>
            this.compute.virtualMachines.beginDeallocateAndWait(this.settings.resourceGroup, vm.vmName, this.signal()),
        );
    }

    async start(vm: AzureVmRef): Promise<void> {
        await this.call(`Start VM ${vm.vmName}`, () =>
            this.compute.virtualMachines.beginStartAndWait(this.settings.resourceGroup, vm.vmName, this.signal()),
        );
    }

    private snapshotName(vm: AzureVmRef, diskId: string, phase: FailbackPhase): string {
        return `${diskOf(vm, diskId).managedDiskName}-fb-${phase.toLowerCase()}`.slice(0, 80);
    }

    async openDisk(vm: AzureVmRef, diskId: string, phase: FailbackPhase): Promise<AzureDiskRead> {
        const rg = this.settings.resourceGroup;
        const disk = diskOf(vm, diskId);
        const running = (await this.powerState(vm)) !== 'deallocated';
        let access;
        if (running) {
            const name = this.snapshotName(vm, diskId, phase);
            const source = await this.call(`Read managed disk ${disk.managedDiskName}`, () =>
                this.compute.disks.get(rg, disk.managedDiskName, this.signal()),
            );
            await this.call(`Snapshot managed disk ${disk.managedDiskName}`, () =>
                this.compute.snapshots.beginCreateOrUpdateAndWait(
                    rg,
                    name,
                    {
                        location: this.settings.location,
                        incremental: true,
                        creationData: { createOption: 'Copy', sourceResourceId: source.id },
                        tags: { 'hvr-failback': vm.failbackId, 'hvr-vm': vm.vmId },
                    },
                    this.signal(),
                ),
            );
            access = await this.call(`Export snapshot ${name}`, () =>
                this.compute.snapshots.beginGrantAccessAndWait(
                    rg,
                    name,
                    { access: 'Read', durationInSeconds: this.exportSeconds },
                    this.signal(),
                ),
            );
        } else {
            access = await this.call(`Export managed disk ${disk.managedDiskName}`, () =>
                this.compute.disks.beginGrantAccessAndWait(
                    rg,
                    disk.managedDiskName,
                    { access: 'Read', durationInSeconds: this.exportSeconds },
                    this.signal(),
                ),
            );
        }
        if (!access.accessSAS) {
            throw new HvrError('TRANSIENT', `Grant access on ${disk.managedDiskName} returned no SAS; try again.`);
        }
        const blob = new PageBlobClient(access.accessSAS, new AnonymousCredential());
        return { blob, source: await dataSource(blob) };
    }

    async releaseDisks(vm: AzureVmRef, phase: FailbackPhase): Promise<void> {
        const rg = this.settings.resourceGroup;
        for (const disk of vm.disks) {
            const name = this.snapshotName(vm, disk.diskId, phase);
            try {
                await this.compute.snapshots.beginRevokeAccessAndWait(rg, name, this.signal());
                await this.compute.snapshots.beginDeleteAndWait(rg, name, this.signal());
            } catch (err) {
                if (!isNotFound(err)) throw mapArmError(err, `Delete snapshot ${name}`);
            }
            await this.call(`Revoke the export of ${disk.managedDiskName}`, () =>
                this.compute.disks.beginRevokeAccessAndWait(rg, disk.managedDiskName, this.signal()),
            );
        }
    }
}
