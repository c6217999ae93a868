import { createHash } from 'node:crypto';
import { FailoverKind } from './states';

/**
 * The Azure resources a failover creates, behind a port: `ArmFailoverInfrastructure` calls Azure Resource Manager,
 * `DryRunFailoverInfrastructure` records what it would create. Every call is idempotent (ARM PUT by a
 * deterministic name), so an activity can be retried; every resource carries the drill's tags, so cleanup finds
 * what a crash left unrecorded.
 */
export type FailoverResourceKind = 'virtualNetwork' | 'disk' | 'networkInterface' | 'virtualMachine';

export interface FailoverResource {
    kind: FailoverResourceKind;
    name: string;
    /** ARM resource id. */
    id: string;
}

/** Tags on every resource a drill or failover creates; cleanup lists the resource group by `hvr-drill`. */
export const TAG_DRILL = 'hvr-drill';
export const TAG_VM = 'hvr-vm';
export const TAG_KIND = 'hvr-failover';

export function failoverTags(vmId: string, drillId: string, kind: FailoverKind): Record<string, string> {
    return { [TAG_DRILL]: drillId, [TAG_VM]: vmId, [TAG_KIND]: kind };
}

export interface IsolatedNetworkSpec {
    name: string;
    subnets: string[];
    tags: Record<string, string>;
}

export interface ManagedDiskSpec {
    name: string;
    /** The failover blob's URL (no SAS: the import reads it with the platform's own access to the account). */
    sourceUri: string;
    isOsDisk: boolean;
    osType: 'Windows' | 'Linux';
    generation: 1 | 2;
    tags: Record<string, string>;
}

export interface NetworkInterfaceSpec {
    name: string;
    subnetId: string;
    tags: Record<string, string>;
}

export interface VirtualMachineSpec {
    name: string;
    vmSize: string;
    osType: 'Windows' | 'Linux';
    osDiskId: string;
    /** Data disks in LUN order. */
    dataDiskIds: string[];
    /** NICs, the first primary. */
    nicIds: string[];
    tags: Record<string, string>;
}

export interface FailoverInfrastructure {
    readonly mode: 'arm' | 'dryrun';
    createIsolatedNetwork(spec: IsolatedNetworkSpec): Promise<FailoverResource>;
    createManagedDisk(spec: ManagedDiskSpec): Promise<FailoverResource>;
    createNetworkInterface(spec: NetworkInterfaceSpec): Promise<FailoverResource>;
    createVirtualMachine(spec: VirtualMachineSpec): Promise<FailoverResource>;
    /** Deletes one resource; false when it was already gone. */
    deleteResource(resource: FailoverResource): Promise<boolean>;
    /** Every resource tagged with the drill id (what cleanup removes besides the recorded ones). */
    listDrillResources(drillId: string): Promise<FailoverResource[]>;
}

/** Deletion order: a VM before its NICs and disks, NICs before their VNet. */
export const DELETE_ORDER: readonly FailoverResourceKind[] = [
    'virtualMachine',
    'networkInterface',
    'disk',
    'virtualNetwork',
];

export function inDeleteOrder(resources: readonly FailoverResource[]): FailoverResource[] {
    const seen = new Set<string>();
    const unique = resources.filter((r) => {
        const key = r.id.toLowerCase();
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
    });
    return unique.sort((a, b) => DELETE_ORDER.indexOf(a.kind) - DELETE_ORDER.indexOf(b.kind));
}

/**
 * Resource names for a drill: short, valid for every kind (1–64 of `[a-z0-9-]`), unique per drill and stable
 * across retries. The VM name keeps a readable prefix of the protected VM's name.
 */
export function failoverResourceNames(
    vmName: string,
    drillId: string,
): {
    vm: string;
    disk: (diskId: string) => string;
    nic: (index: number) => string;
    vnet: string;
} {
    const token = createHash('sha256').update(drillId).digest('hex').slice(0, 8);
    const readable =
        vmName
            .toLowerCase()
            .replace(/[^a-z0-9-]+/g, '-')
            .replace(/^-+|-+$/g, '')
            .slice(0, 30) || 'vm';
    const base = `${readable}-${token}`;
    const diskPart = (diskId: string): string =>
        diskId
            .toLowerCase()
            .replace(/[^a-z0-9-]+/g, '-')
            .slice(0, 20);
    return {
        vm: base,
        disk: (diskId) => `${base}-disk-${diskPart(diskId)}`,
        nic: (index) => `${base}-nic${index}`,
        vnet: `${base}-isolated`,
    };
}
