import { RestError } from '@azure/core-rest-pipeline';
import {
    ArmFailoverInfrastructure,
    ArmFailoverSettings,
    mapArmError,
} from '../../../shared/failover/armInfrastructure';
import { failoverTags, TAG_DRILL } from '../../../shared/failover/infrastructure';
import { FakeArm, fakeCredential } from './fakeArm';

const SUB = '11111111-2222-3333-4444-555555555555';
const RG = `/subscriptions/${SUB}/resourceGroups/dr-rg`;
const settings: ArmFailoverSettings = {
    subscriptionId: SUB,
    resourceGroup: 'dr-rg',
    location: 'westeurope',
    storageAccountId: `${RG}/providers/Microsoft.Storage/storageAccounts/replicas1`,
    diskSku: 'StandardSSD_LRS',
    operationTimeoutMs: 60_000,
};

function setup(): { arm: FakeArm; infra: ArmFailoverInfrastructure } {
    const arm = new FakeArm();
    const infra = new ArmFailoverInfrastructure(settings, {
        credential: fakeCredential,
        httpClient: arm,
        pollIntervalMs: 0,
    });
    return { arm, infra };
}

const tags = failoverTags('vm1', 'drill-1', 'TestFailover');

describe('ARM failover infrastructure: the requests it sends', () => {
    it('imports a managed disk from the failover blob, waiting for the long-running operation to finish', async () => {
        const { arm, infra } = setup();
        const disk = await infra.createManagedDisk({
            name: 'web-1a2b3c4d-disk-os',
            sourceUri: 'https://replicas1.blob.core.windows.net/failover/vm1/drill-1/os.vhd',
            isOsDisk: true,
            osType: 'Windows',
            generation: 2,
            tags,
        });
        expect(disk).toEqual({
            kind: 'disk',
            name: 'web-1a2b3c4d-disk-os',
            id: `${RG}/providers/Microsoft.Compute/disks/web-1a2b3c4d-disk-os`,
        });
        const put = arm.sent.find((r) => r.method === 'PUT')!;
        expect(put.path).toBe(`${RG}/providers/Microsoft.Compute/disks/web-1a2b3c4d-disk-os`);
        expect(put.apiVersion).toMatch(/^\d{4}-\d{2}-\d{2}/);
        expect(put.authorization).toBe('Bearer test-token');
        expect(put.body).toEqual({
            location: 'westeurope',
            tags,
            sku: { name: 'StandardSSD_LRS' },
            properties: {
                osType: 'Windows',
                hyperVGeneration: 'V2',
                creationData: {
                    createOption: 'Import',
                    storageAccountId: settings.storageAccountId,
                    sourceUri: 'https://replicas1.blob.core.windows.net/failover/vm1/drill-1/os.vhd',
                },
            },
        });
        // The poller followed the Azure-AsyncOperation header until Succeeded (InProgress first).
        const polls = arm.sent.filter((r) => r.method === 'GET' && r.path.includes('/operations/'));
        expect(polls.length).toBeGreaterThanOrEqual(2);
    });

    it('creates a data disk without OS type or generation', async () => {
        const { arm, infra } = setup();
        await infra.createManagedDisk({
            name: 'd',
            sourceUri: 'https://x/failover/d.vhd',
            isOsDisk: false,
            osType: 'Linux',
            generation: 1,
            tags,
        });
        const body = arm.sent.find((r) => r.method === 'PUT')!.body;
        expect(body.properties.osType).toBeUndefined();
        expect(body.properties.hyperVGeneration).toBeUndefined();
    });

    it('creates the NIC in the chosen subnet and the VM attaching its disks and NICs', async () => {
        const { arm, infra } = setup();
        const subnetId = `${RG}/providers/Microsoft.Network/virtualNetworks/test-vnet/subnets/Corp`;
        const nic = await infra.createNetworkInterface({ name: 'web-nic0', subnetId, tags });
        expect(arm.sent.find((r) => r.method === 'PUT')!.body).toEqual({
            location: 'westeurope',
            tags,
            properties: {
                ipConfigurations: [
                    {
                        name: 'ipconfig1',
                        properties: { subnet: { id: subnetId, properties: {} }, privateIPAllocationMethod: 'Dynamic' },
                    },
                ],
            },
        });
        const vm = await infra.createVirtualMachine({
            name: 'web-1a2b3c4d',
            vmSize: 'Standard_D2s_v5',
            osType: 'Windows',
            osDiskId: `${RG}/providers/Microsoft.Compute/disks/os`,
            dataDiskIds: [
                `${RG}/providers/Microsoft.Compute/disks/data0`,
                `${RG}/providers/Microsoft.Compute/disks/data1`,
            ],
            nicIds: [nic.id],
            tags,
        });
        expect(vm.id).toBe(`${RG}/providers/Microsoft.Compute/virtualMachines/web-1a2b3c4d`);
        const put = arm.sent.filter((r) => r.method === 'PUT')[1]!;
        expect(put.body.properties.hardwareProfile).toEqual({ vmSize: 'Standard_D2s_v5' });
        expect(put.body.properties.storageProfile).toEqual({
            osDisk: {
                osType: 'Windows',
                createOption: 'Attach',
                managedDisk: { id: `${RG}/providers/Microsoft.Compute/disks/os` },
            },
            dataDisks: [
                {
                    lun: 0,
                    createOption: 'Attach',
                    managedDisk: { id: `${RG}/providers/Microsoft.Compute/disks/data0` },
                },
                {
                    lun: 1,
                    createOption: 'Attach',
                    managedDisk: { id: `${RG}/providers/Microsoft.Compute/disks/data1` },
                },
            ],
        });
        expect(put.body.properties.networkProfile).toEqual({
            networkInterfaces: [{ id: nic.id, properties: { primary: true } }],
        });
        // No OS profile: the VM boots the replicated OS disk as it is.
        expect(put.body.properties.osProfile).toBeUndefined();
    });

    it('creates an isolated VNet with a subnet per source network, and nothing peered', async () => {
        const { arm, infra } = setup();
        await infra.createIsolatedNetwork({ name: 'web-isolated', subnets: ['Corp', 'Backup'], tags });
        const body = arm.sent.find((r) => r.method === 'PUT')!.body;
        expect(body.properties.addressSpace).toEqual({ addressPrefixes: ['10.250.0.0/16'] });
        expect(body.properties.subnets).toEqual([
            { name: 'Corp', properties: { addressPrefix: '10.250.0.0/24' } },
            { name: 'Backup', properties: { addressPrefix: '10.250.1.0/24' } },
        ]);
        expect(body.properties.virtualNetworkPeerings).toBeUndefined();
    });

    it('finds the drill resources by tag and deletes them, 404 counting as already gone', async () => {
        const { arm, infra } = setup();
        const nic = await infra.createNetworkInterface({ name: 'n0', subnetId: `${RG}/x/subnets/s`, tags });
        const disk = await infra.createManagedDisk({
            name: 'd0',
            sourceUri: 'https://x/d0.vhd',
            isOsDisk: true,
            osType: 'Windows',
            generation: 1,
            tags,
        });
        await infra.createManagedDisk({
            name: 'other',
            sourceUri: 'https://x/o.vhd',
            isOsDisk: false,
            osType: 'Windows',
            generation: 1,
            tags: { ...tags, [TAG_DRILL]: 'another-drill' },
        });
        const found = await infra.listDrillResources('drill-1');
        expect(found.map((r) => `${r.kind}:${r.name}`).sort()).toEqual(['disk:d0', 'networkInterface:n0']);

        arm.sent.length = 0;
        expect(await infra.deleteResource(nic)).toBe(true);
        expect(await infra.deleteResource(disk)).toBe(true);
        expect(arm.mutations()).toEqual([
            `DELETE ${RG}/providers/Microsoft.Network/networkInterfaces/n0`,
            `DELETE ${RG}/providers/Microsoft.Compute/disks/d0`,
        ]);
        arm.failNext('DELETE', '/disks/d0', 404, 'ResourceNotFound');
        expect(await infra.deleteResource(disk)).toBe(false);
    });

    it('maps ARM refusals onto our codes: 403 is FORBIDDEN naming the role, 400 VALIDATION_FAILED, 503 retried then TRANSIENT', async () => {
        const { arm, infra } = setup();
        const nicSpec = { name: 'n', subnetId: `${RG}/x/subnets/s`, tags };
        arm.failNext('PUT', '/networkInterfaces/n', 403, 'AuthorizationFailed');
        await expect(infra.createNetworkInterface(nicSpec)).rejects.toMatchObject({
            code: 'FORBIDDEN',
            recoverable: false,
            message: expect.stringContaining('Contributor'),
        });
        arm.failNext('PUT', '/networkInterfaces/n', 400, 'InvalidSubnet');
        await expect(infra.createNetworkInterface(nicSpec)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
        // The SDK's own retry policy takes a passing 503; one that lasts becomes TRANSIENT (retried on our schedule).
        arm.failNext('PUT', '/networkInterfaces/n', 503, 'ServerBusy');
        await expect(infra.createNetworkInterface(nicSpec)).resolves.toMatchObject({ name: 'n' });
        expect(mapArmError(new RestError('busy', { statusCode: 503 }), 'Create n')).toMatchObject({
            code: 'TRANSIENT',
            recoverable: true,
        });
        expect(mapArmError(new RestError('no', { statusCode: 401 }), 'Create n')).toMatchObject({
            code: 'UNAUTHORIZED',
        });
    });
});
