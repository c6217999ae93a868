import { ComputeManagementClient, ComputeManagementClientOptionalParams } from '@azure/arm-compute';
import { NetworkManagementClient, NetworkManagementClientOptionalParams } from '@azure/arm-network';
import { TokenCredential } from '@azure/core-auth';
import { HttpClient, RestError } from '@azure/core-rest-pipeline';
import { HvrError } from '../errors';
import { deadline } from '../storage/deadline';
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

export interface ArmFailoverSettings {
    subscriptionId: string;
    resourceGroup: string;
    location: string;
    /** ARM id of the storage account holding the `failover` container (a managed disk import names it). */
    storageAccountId: string;
    /** Managed disk SKU (Standard_LRS, StandardSSD_LRS, Premium_LRS, ...). */
    diskSku: string;
    /** Bound on each ARM operation including its long-running completion. */
    operationTimeoutMs: number;
}

export interface ArmFailoverOptions {
    credential: TokenCredential;
    /** Tests answer requests with canned responses through this, as the Azure SDK's own tests do. */
    httpClient?: HttpClient;
    /** Delay between polls of a long-running operation (ARM's Retry-After wins when it is given). */
    pollIntervalMs?: number;
}

/** Address space of an isolated drill VNet: one /24 per subnet, nothing peered or routed. */
export const ISOLATED_ADDRESS_SPACE = '10.250.0.0/16';

/** Maps ARM failures onto our codes: auth → UNAUTHORIZED/FORBIDDEN (non-recoverable), 4xx → VALIDATION_FAILED. */
export function mapArmError(err: unknown, what: string): unknown {
    if (!(err instanceof RestError) || err.statusCode === undefined) return err;
    const status = err.statusCode;
    const detail = `${what}: ${status} ${err.code ?? ''} ${err.message}`.trim();
    if (status === 401) return new HvrError('UNAUTHORIZED', detail, { statusCode: status }, { cause: err });
    if (status === 403) {
        return new HvrError(
            'FORBIDDEN',
            `${detail} (the app's identity needs Contributor on the failover resource group)`,
            { statusCode: status },
            { cause: err },
        );
    }
    if (status === 404) return new HvrError('NOT_FOUND', detail, { statusCode: status }, { cause: err });
    if (status === 409) return new HvrError('CONFLICT', detail, { statusCode: status }, { cause: err });
    if (status === 429 || status >= 500)
        return new HvrError('TRANSIENT', detail, { statusCode: status }, { cause: err });
    return new HvrError('VALIDATION_FAILED', detail, { statusCode: status }, { cause: err });
}

/** The failover resources through Azure Resource Manager (`@azure/arm-compute`, `@azure/arm-network`). */
export class ArmFailoverInfrastructure implements FailoverInfrastructure {
    readonly mode = 'arm' as const;
    private readonly compute: ComputeManagementClient;
    private readonly network: NetworkManagementClient;
    private readonly pollIntervalMs: number | undefined;

    constructor(
        private readonly settings: ArmFailoverSettings,
        options: ArmFailoverOptions,
    ) {
        const computeOptions: ComputeManagementClientOptionalParams = {};
        const networkOptions: NetworkManagementClientOptionalParams = {};
        if (options.httpClient) {
            computeOptions.httpClient = options.httpClient;
            networkOptions.httpClient = options.httpClient;
        }
        this.compute = new ComputeManagementClient(options.credential, settings.subscriptionId, computeOptions);
        this.network = new NetworkManagementClient(options.credential, settings.subscriptionId, networkOptions);
        this.pollIntervalMs = options.pollIntervalMs;
    }

    private id(provider: string, type: string, name: string): string {
        const { subscriptionId, resourceGroup } = this.settings;
        return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/${provider}/${type}/${name}`;
    }

    private options(): { abortSignal: AbortSignal; updateIntervalInMs?: number } {
        const base = { abortSignal: deadline(this.settings.operationTimeoutMs) };
        return this.pollIntervalMs === undefined ? base : { ...base, updateIntervalInMs: this.pollIntervalMs };
    }

    private async call<T>(what: string, body: () => Promise<T>): Promise<T> {
        try {
            return await body();
        } catch (err) {
            throw mapArmError(err, what);
        }
    }

    async createIsolatedNetwork(spec: IsolatedNetworkSpec): Promise<FailoverResource> {
        const { resourceGroup, location } = this.settings;
        const vnet = await this.call(`Create virtual network ${spec.name}`, () =>
            this.network.virtualNetworks.beginCreateOrUpdateAndWait(
                resourceGroup,
                spec.name,
                {
                    location,
                    tags: spec.tags,
                    addressSpace: { addressPrefixes: [ISOLATED_ADDRESS_SPACE] },
                    subnets: spec.subnets.map((name, i) => ({ name, addressPrefix: `10.250.${i}.0/24` })),
                },
                this.options(),
            ),
        );
        const id = vnet.id ?? this.id('Microsoft.Network', 'virtualNetworks', spec.name);
        return { kind: 'virtualNetwork', name: spec.name, id };
    }

    async createManagedDisk(spec: ManagedDiskSpec): Promise<FailoverResource> {
        const { resourceGroup, location, storageAccountId, diskSku } = this.settings;
        const disk = await this.call(`Create managed disk ${spec.name}`, () =>
            this.compute.disks.createOrUpdate(
                resourceGroup,
                spec.name,
                {
                    location,
                    tags: spec.tags,
                    sku: { name: diskSku },
                    ...(spec.isOsDisk
                        ? { osType: spec.osType, hyperVGeneration: spec.generation === 2 ? 'V2' : 'V1' }
                        : {}),
                    creationData: { createOption: 'Import', storageAccountId, sourceUri: spec.sourceUri },
                },
                this.options(),
            ),
        );
        return { kind: 'disk', name: spec.name, id: disk.id ?? this.id('Microsoft.Compute', 'disks', spec.name) };
    }

    async createNetworkInterface(spec: NetworkInterfaceSpec): Promise<FailoverResource> {
        const { resourceGroup, location } = this.settings;
        const nic = await this.call(`Create network interface ${spec.name}`, () =>
            this.network.networkInterfaces.beginCreateOrUpdateAndWait(
                resourceGroup,
                spec.name,
                {
                    location,
                    tags: spec.tags,
                    ipConfigurations: [
                        { name: 'ipconfig1', subnet: { id: spec.subnetId }, privateIPAllocationMethod: 'Dynamic' },
                    ],
                },
                this.options(),
            ),
        );
        const id = nic.id ?? this.id('Microsoft.Network', 'networkInterfaces', spec.name);
        return { kind: 'networkInterface', name: spec.name, id };
    }

    async createVirtualMachine(spec: VirtualMachineSpec): Promise<FailoverResource> {
        const { resourceGroup, location } = this.settings;
        const vm = await this.call(`Create virtual machine ${spec.name}`, () =>
            this.compute.virtualMachines.createOrUpdate(
                resourceGroup,
                spec.name,
                {
                    location,
                    tags: spec.tags,
                    hardwareProfile: { vmSize: spec.vmSize },
                    storageProfile: {
                        osDisk: {
                            osType: spec.osType,
                            createOption: 'Attach',
                            managedDisk: { id: spec.osDiskId },
                        },
                        dataDisks: spec.dataDiskIds.map((id, lun) => ({
                            lun,
                            createOption: 'Attach',
                            managedDisk: { id },
                        })),
                    },
                    networkProfile: {
                        networkInterfaces: spec.nicIds.map((id, i) => ({ id, primary: i === 0 })),
                    },
                    diagnosticsProfile: { bootDiagnostics: { enabled: true } },
                },
                this.options(),
            ),
        );
        const id = vm.id ?? this.id('Microsoft.Compute', 'virtualMachines', spec.name);
        return { kind: 'virtualMachine', name: spec.name, id };
    }

    async deleteResource(resource: FailoverResource): Promise<boolean> {
        const rg = this.settings.resourceGroup;
        try {
            switch (resource.kind) {
                case 'virtualMachine':
                    await this.compute.virtualMachines.delete(rg, resource.name, this.options());
                    break;
                case 'disk':
                    await this.compute.disks.delete(rg, resource.name, this.options());
                    break;
                case 'networkInterface':
                    await this.network.networkInterfaces.beginDeleteAndWait(rg, resource.name, this.options());
                    break;
                case 'virtualNetwork':
                    await this.network.virtualNetworks.beginDeleteAndWait(rg, resource.name, this.options());
                    break;
            }
            return true;
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 404) return false;
            throw mapArmError(err, `Delete ${resource.kind} ${resource.name}`);
        }
    }

    async listDrillResources(drillId: string): Promise<FailoverResource[]> {
        const rg = this.settings.resourceGroup;
        const found: FailoverResource[] = [];
        const collect = async (
            kind: FailoverResourceKind,
            items: AsyncIterable<{ id?: string; name?: string; tags?: Record<string, string> }>,
        ): Promise<void> => {
            for await (const item of items) {
                if (item.tags?.[TAG_DRILL] === drillId && item.id && item.name) {
                    found.push({ kind, name: item.name, id: item.id });
                }
            }
        };
        const signal = { abortSignal: deadline(this.settings.operationTimeoutMs) };
        await this.call(`List the resources of drill ${drillId}`, async () => {
            await collect('virtualMachine', this.compute.virtualMachines.list(rg, signal));
            await collect('networkInterface', this.network.networkInterfaces.list(rg, signal));
            await collect('disk', this.compute.disks.listByResourceGroup(rg, signal));
            await collect('virtualNetwork', this.network.virtualNetworks.list(rg, signal));
        });
        return found;
    }
}
