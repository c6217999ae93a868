import { HvrError } from '../errors';
import {
    FailoverInfrastructure,
    FailoverResource,
    FailoverResourceKind,
    IsolatedNetworkSpec,
    ManagedDiskSpec,
    NetworkInterfaceSpec,
    TAG_DRILL,
    VirtualMachineSpec,
} from './infrastructure';

/** One call the dry run received, with the request it would have sent. */
export interface DryRunOperation {
    op: 'create' | 'delete';
    kind: FailoverResourceKind;
    name: string;
    id: string;
    spec?: IsolatedNetworkSpec | ManagedDiskSpec | NetworkInterfaceSpec | VirtualMachineSpec;
}

const PROVIDER: Record<FailoverResourceKind, string> = {
    virtualNetwork: 'Microsoft.Network/virtualNetworks',
    networkInterface: 'Microsoft.Network/networkInterfaces',
    disk: 'Microsoft.Compute/disks',
    virtualMachine: 'Microsoft.Compute/virtualMachines',
};

/**
 * Creates nothing: records each resource it would create (and keeps it as "existing" so deletes and tag lookups
 * behave like ARM's), with ARM-shaped ids in subscription 0000… and resource group `dryrun`. The simulator and
 * the local host use it; the drill record shows the same resources either way. Checks the references ARM would
 * check (a VM's disks and NICs must exist), so a wrong plan fails here too.
 */
export class DryRunFailoverInfrastructure implements FailoverInfrastructure {
    readonly mode = 'dryrun' as const;
    readonly operations: DryRunOperation[] = [];
    private readonly existing = new Map<string, { resource: FailoverResource; tags: Record<string, string> }>();

    constructor(private readonly resourceGroup = 'dryrun') {}

    private idOf(kind: FailoverResourceKind, name: string): string {
        return `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${this.resourceGroup}/providers/${PROVIDER[kind]}/${name}`;
    }

    private create(
        kind: FailoverResourceKind,
        spec: DryRunOperation['spec'] & { name: string; tags: Record<string, string> },
    ): FailoverResource {
        const resource = { kind, name: spec.name, id: this.idOf(kind, spec.name) };
        this.operations.push({ op: 'create', ...resource, spec });
        this.existing.set(resource.id.toLowerCase(), { resource, tags: spec.tags });
        return resource;
    }

    private requireExisting(id: string, what: string): void {
        if (!this.existing.has(id.toLowerCase())) {
            throw new HvrError('NOT_FOUND', `${what} ${id} does not exist (dry run).`);
        }
    }

    async createIsolatedNetwork(spec: IsolatedNetworkSpec): Promise<FailoverResource> {
        return this.create('virtualNetwork', spec);
    }

    async createManagedDisk(spec: ManagedDiskSpec): Promise<FailoverResource> {
        return this.create('disk', spec);
    }

    async createNetworkInterface(spec: NetworkInterfaceSpec): Promise<FailoverResource> {
        return this.create('networkInterface', spec);
    }

    async createVirtualMachine(spec: VirtualMachineSpec): Promise<FailoverResource> {
        for (const id of [spec.osDiskId, ...spec.dataDiskIds]) this.requireExisting(id, 'Disk');
        for (const id of spec.nicIds) this.requireExisting(id, 'Network interface');
        return this.create('virtualMachine', spec);
    }

    async deleteResource(resource: FailoverResource): Promise<boolean> {
        this.operations.push({ op: 'delete', kind: resource.kind, name: resource.name, id: resource.id });
        return this.existing.delete(resource.id.toLowerCase());
    }

    async listDrillResources(drillId: string): Promise<FailoverResource[]> {
        return [...this.existing.values()].filter((e) => e.tags[TAG_DRILL] === drillId).map((e) => e.resource);
    }
}
