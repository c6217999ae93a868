import { chooseSubnet, parseNetworkMapping } from '../../../shared/failover/networkMapping';
import { chooseRecoveryPoint, parseRecoveryPointChoice } from '../../../shared/failover/recoveryPointChoice';
import { failoverInfrastructureMode, infrastructureFromSettings } from '../../../shared/failover/settings';
import { chooseVmSize } from '../../../shared/failover/vmSize';
import { failoverResourceNames, inDeleteOrder } from '../../../shared/failover/infrastructure';
import { RecoveryPoint } from '../../../shared/state/recoveryPoints';

const SUB = '11111111-2222-3333-4444-555555555555';
const VNET = `/subscriptions/${SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/prod`;

function point(cycleId: string, minutes: number, consistency: RecoveryPoint['consistency']): RecoveryPoint {
    return {
        vmId: 'vm1',
        cycleId,
        recoveryPointId: `vm1:${cycleId}`,
        consistency,
        capturedAt: new Date(Date.UTC(2026, 0, 1, 0, minutes)).toISOString(),
        createdAt: '2026-01-01T00:00:00Z',
        disks: {},
    };
}

describe('recovery point choice', () => {
    const points = [
        point('c1', 0, 'AppConsistent'),
        point('c3', 10, 'CrashConsistent'),
        point('c2', 5, 'CrashConsistent'),
    ];

    it('picks the newest, the newest app-consistent, or the one named', () => {
        expect(chooseRecoveryPoint(points, { type: 'Latest' }).cycleId).toBe('c3');
        expect(chooseRecoveryPoint(points, { type: 'LatestApplicationConsistent' }).cycleId).toBe('c1');
        expect(chooseRecoveryPoint(points, { type: 'Custom', recoveryPointId: 'vm1:c2' }).cycleId).toBe('c2');
    });

    it('refuses with PREREQUISITE_FAILED when nothing fits, saying why', () => {
        expect(() => chooseRecoveryPoint([], { type: 'Latest' })).toThrow(/no recovery point yet/);
        expect(() => chooseRecoveryPoint(points.slice(1), { type: 'LatestApplicationConsistent' })).toThrow(
            /no app-consistent/,
        );
        expect(() => chooseRecoveryPoint(points, { type: 'Custom', recoveryPointId: 'vm1:c9' })).toThrow(
            expect.objectContaining({ code: 'PREREQUISITE_FAILED' }),
        );
    });

    it('parses the request field, defaulting to Latest and naming a bad value', () => {
        expect(parseRecoveryPointChoice(undefined)).toEqual({ type: 'Latest' });
        expect(() => parseRecoveryPointChoice({ type: 'Oldest' })).toThrow(/"Oldest"/);
        expect(() => parseRecoveryPointChoice({ type: 'Custom' })).toThrow(/recoveryPointId/);
    });
});

describe('network mapping', () => {
    it('joins the subnet named like the source network, else the first one', () => {
        expect(chooseSubnet(VNET, ['default', 'Corp'], 'corp')).toEqual({ vnetId: VNET, subnet: 'Corp' });
        expect(chooseSubnet(VNET, ['default', 'Corp'], 'Lab')).toEqual({ vnetId: VNET, subnet: 'default' });
        expect(() => chooseSubnet(VNET, [], 'Lab')).toThrow(expect.objectContaining({ code: 'PREREQUISITE_FAILED' }));
    });

    it('validates a mapping, refusing a test VNet that is the production one', () => {
        const ok = parseNetworkMapping('site1', 'Corp', { recoveryVnetId: VNET, recoverySubnets: ['a'] }, 't');
        expect(ok).toMatchObject({ siteId: 'site1', sourceNetwork: 'Corp', recoverySubnets: ['a'] });
        expect(() =>
            parseNetworkMapping('site1', 'Corp', { recoveryVnetId: 'prod', recoverySubnets: ['a'] }, 't'),
        ).toThrow(/recoveryVnetId must be the ARM id/);
        expect(() =>
            parseNetworkMapping(
                'site1',
                'Corp',
                { recoveryVnetId: VNET, recoverySubnets: ['a'], testVnetId: VNET, testSubnets: ['a'] },
                't',
            ),
        ).toThrow(/must not be the recovery VNet/);
        expect(() => parseNetworkMapping('site1', 'Corp', { recoveryVnetId: VNET, recoverySubnets: [] }, 't')).toThrow(
            /recoverySubnets/,
        );
    });
});

describe('VM size and resource names', () => {
    it('takes the smallest size that fits cores, memory, data disks and NICs, or the operator choice', () => {
        expect(chooseVmSize({ dataDisks: 1, nics: 1 })).toBe('Standard_D2s_v5');
        expect(chooseVmSize({ cores: 4, memoryMiB: 12 * 1024, dataDisks: 1, nics: 1 })).toBe('Standard_D4s_v5');
        expect(chooseVmSize({ cores: 2, dataDisks: 12, nics: 1 })).toBe('Standard_D8s_v5');
        expect(chooseVmSize({ dataDisks: 1, nics: 1 }, 'Standard_E4s_v5')).toBe('Standard_E4s_v5');
        expect(() => chooseVmSize({ cores: 200, dataDisks: 1, nics: 1 })).toThrow(/give vmSize/);
        expect(() => chooseVmSize({ dataDisks: 1, nics: 1 }, 'big')).toThrow(/"big"/);
    });

    it('names resources validly and stably per drill, and deletes the VM before what it uses', () => {
        const a = failoverResourceNames('SQL Server #1', 'drill-1');
        expect(a.vm).toMatch(/^sql-server-1-[0-9a-f]{8}$/);
        expect(a.disk('OS_Disk')).toBe(`${a.vm}-disk-os-disk`);
        expect(failoverResourceNames('SQL Server #1', 'drill-1').vm).toBe(a.vm);
        expect(failoverResourceNames('SQL Server #1', 'drill-2').vm).not.toBe(a.vm);
        const ordered = inDeleteOrder([
            { kind: 'virtualNetwork', name: 'v', id: '/v' },
            { kind: 'disk', name: 'd', id: '/d' },
            { kind: 'virtualMachine', name: 'm', id: '/m' },
            { kind: 'networkInterface', name: 'n', id: '/n' },
            { kind: 'disk', name: 'd', id: '/D' },
        ]);
        expect(ordered.map((r) => r.kind)).toEqual(['virtualMachine', 'networkInterface', 'disk', 'virtualNetwork']);
    });
});

describe('failover settings', () => {
    it('requires FAILOVER_INFRASTRUCTURE to be arm or dryrun', () => {
        expect(() => failoverInfrastructureMode({})).toThrow(/FAILOVER_INFRASTRUCTURE is not set/);
        expect(() => failoverInfrastructureMode({ FAILOVER_INFRASTRUCTURE: 'azure' })).toThrow(/arm or dryrun/);
        expect(infrastructureFromSettings({ FAILOVER_INFRASTRUCTURE: 'dryrun' }).mode).toBe('dryrun');
    });

    it('names the missing ARM setting', () => {
        expect(() =>
            infrastructureFromSettings({ FAILOVER_INFRASTRUCTURE: 'arm', FAILOVER_SUBSCRIPTION_ID: SUB }),
        ).toThrow(/FAILOVER_RESOURCE_GROUP/);
        const arm = infrastructureFromSettings({
            FAILOVER_INFRASTRUCTURE: 'arm',
            FAILOVER_SUBSCRIPTION_ID: SUB,
            FAILOVER_RESOURCE_GROUP: 'dr-rg',
            FAILOVER_LOCATION: 'westeurope',
            FAILOVER_STORAGE_ACCOUNT_ID: `/subscriptions/${SUB}/resourceGroups/dr/providers/Microsoft.Storage/storageAccounts/r`,
            FAILOVER_IDENTITY_CLIENT_ID: '00000000-0000-0000-0000-000000000001',
        });
        expect(arm.mode).toBe('arm');
    });
});
