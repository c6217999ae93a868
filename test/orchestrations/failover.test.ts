import '../../functions/apiFailover';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { failoverPageBlob, listFailoverDisks } from '../../shared/failover/failoverDisks';
import { VirtualMachineSpec } from '../../shared/failover/infrastructure';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { HvrError } from '../../shared/errors';
import { createReplicaDisk, replicaBlobName, replicaPageBlob } from '../../shared/replica/replicaDisk';
import { getDrill, listDrills } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import { createRecoveryPoint, listRecoveryPoints, recoveryPointId } from '../../shared/state/recoveryPoints';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { describeOnEngines, isFinished } from '../support/durableEngines';
import { uniqueName } from '../support/azurite';
import { EngineHarness } from './lifecycle/engineHarness';
import { protectedVmRow, sampleVm } from './lifecycle/harness';

// The drill's 30 s copy poll and the retry delays, a thousand times faster (the real engine has no virtual clock).
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

const MiB = 1024 * 1024;
const SUB = '11111111-2222-3333-4444-555555555555';
const VNET = `/subscriptions/${SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/prod`;
const TEST_VNET = `/subscriptions/${SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/drill`;

/** A protected VM with two disks and two recovery points whose snapshots hold different bytes. */
async function seedProtectedVm(h: EngineHarness, vmId: string): Promise<void> {
    await h.seedSiteAndPolicy();
    const vm = sampleVm(vmId, {
        disks: [
            { diskId: 'os', sizeBytes: 2 * MiB, logicalSectorBytes: 512, isOsDisk: true },
            { diskId: 'data', sizeBytes: 1 * MiB, logicalSectorBytes: 512, isOsDisk: false },
        ],
    });
    const at = h.now().toISOString();
    await createProtectedItem(h.scope, protectedVmRow(vmId, at, { disks: vm.disks }));
    for (const [cycle, fill] of [
        ['c1', 0x11],
        ['c2', 0x22],
    ] as const) {
        const disks: Record<string, { blobName: string; snapshot: string; sequence: number }> = {};
        for (const d of vm.disks) {
            await createReplicaDisk(h.scope.conn.blob, {
                vmId,
                diskId: d.diskId,
                sizeBytes: d.sizeBytes,
                createdAt: h.now(),
            });
            const page = replicaPageBlob(h.scope.conn.blob, replicaBlobName(vmId, d.diskId));
            await page.uploadPages(Buffer.alloc(4096, fill), 0, 4096);
            const snap = await page.createSnapshot();
            disks[d.diskId] = { blobName: page.name, snapshot: snap.snapshot!, sequence: cycle === 'c1' ? 1 : 2 };
        }
        await createRecoveryPoint(h.scope, {
            vmId,
            cycleId: cycle,
            recoveryPointId: recoveryPointId(vmId, cycle),
            consistency: cycle === 'c1' ? 'AppConsistent' : 'CrashConsistent',
            capturedAt: new Date(h.now().getTime() + (cycle === 'c1' ? 0 : 300_000)).toISOString(),
            createdAt: at,
            disks,
        });
    }
}

describeOnEngines('test failover, failover and commit (Azurite tables and blobs, dry-run ARM)', (engine) => {
    let h: EngineHarness;
    let infra: DryRunFailoverInfrastructure;
    let restoreInfra: () => void;

    beforeEach(() => {
        h = new EngineHarness(engine());
        infra = new DryRunFailoverInfrastructure();
        restoreInfra = setFailoverInfrastructure(infra);
    });
    afterEach(() => {
        restoreInfra();
        h.close();
    });
    const waitForJob = (instanceId: string) => engine().waitFor(instanceId, isFinished);

    it('runs a drill from the latest app-consistent point into an isolated VNet, then cleanup removes everything', async () => {
        const vm1 = uniqueName('vm1');
        await seedProtectedVm(h, vm1);
        const started = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm1}/testFailover`,
            params: { vmId: vm1, action: 'testFailover' },
            body: {
                recoveryPoint: { type: 'LatestApplicationConsistent' },
                networkAdapters: [{ sourceNetwork: 'Corp' }],
            },
        });
        expect(started.status).toBe(202);
        const { jobId, drillId, instanceId } = started.jsonBody!;
        expect(instanceId).toBe(`testfailover:${vm1}`);
        await waitForJob(instanceId);

        const job = await getJob(h.scope, jobId);
        expect(job).toMatchObject({ kind: 'TestFailover', state: 'Succeeded' });
        expect(job!.tasks.map((t) => t.state)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
        expect(await getProtectedItem(h.scope, vm1)).toMatchObject({
            protectionState: 'Protected',
            testFailoverState: 'TestFailoverCleanupPending',
            testFailoverStateDescription: 'Test failover cleanup pending',
            currentDrillId: drillId,
        });
        const drill = (await getDrill(h.scope, vm1, drillId))!;
        expect(drill).toMatchObject({ state: 'Completed', recoveryPointId: `${vm1}:c1`, infrastructure: 'dryrun' });
        expect(drill.resources.map((r) => r.kind)).toEqual([
            'virtualNetwork',
            'disk',
            'disk',
            'networkInterface',
            'virtualMachine',
        ]);
        // Isolated: a VNet made for the drill, with a subnet named like the source network; the NIC joins it.
        const created = infra.operations.filter((o) => o.op === 'create');
        expect(created[0]!.spec).toMatchObject({ subnets: ['Corp'], tags: { 'hvr-drill': drillId } });
        expect(created.find((o) => o.kind === 'networkInterface')!.spec).toMatchObject({
            subnetId: `${created[0]!.id}/subnets/Corp`,
        });
        const vmSpec = created.find((o) => o.kind === 'virtualMachine')!.spec as VirtualMachineSpec;
        expect(vmSpec).toMatchObject({
            vmSize: 'Standard_D2s_v5',
            dataDiskIds: [expect.stringContaining('disk-data')],
        });
        expect(vmSpec.osDiskId).toContain('disk-os');
        // The failover blobs hold the point's bytes (cycle 1 wrote 0x11), and the replica is untouched.
        const blob = await failoverPageBlob(h.scope.conn.blob, drill.failoverBlobs[1]!).downloadToBuffer(0, 4096);
        expect(blob.equals(Buffer.alloc(4096, 0x11))).toBe(true);

        const cleanup = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm1}/testFailoverCleanup`,
            params: { vmId: vm1, action: 'testFailoverCleanup' },
            body: { comments: 'Boots, app answers.' },
        });
        expect(cleanup.status).toBe(202);
        await waitForJob(cleanup.jsonBody!.instanceId);
        expect(await infra.listDrillResources(drillId)).toEqual([]);
        expect(infra.operations.filter((o) => o.op === 'delete').map((o) => o.kind)).toEqual([
            'virtualMachine',
            'networkInterface',
            'disk',
            'disk',
            'virtualNetwork',
        ]);
        expect(await listFailoverDisks(h.scope.conn, vm1, drillId)).toEqual([]);
        expect(await getDrill(h.scope, vm1, drillId)).toMatchObject({ state: 'CleanedUp', cleanedUp: true });
        const item = (await getProtectedItem(h.scope, vm1))!;
        expect(item).toMatchObject({ testFailoverState: 'None', lastSuccessfulTestFailoverTime: expect.any(String) });
        expect(item.currentDrillId).toBe(drillId);
        expect(await listRecoveryPoints(h.scope, vm1)).toHaveLength(2);
    });

    it('cleans up what a drill created when it fails halfway, and says so on the job and the drill', async () => {
        const vm2 = uniqueName('vm2');
        await seedProtectedVm(h, vm2);
        infra.createVirtualMachine = async (_spec: VirtualMachineSpec) => {
            throw new HvrError('FORBIDDEN', 'The identity may not create virtual machines in dr-rg.');
        };
        const started = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm2}/testFailover`,
            params: { vmId: vm2, action: 'testFailover' },
        });
        const { jobId, drillId, instanceId } = started.jsonBody!;
        await waitForJob(instanceId);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.state).toBe('Failed');
        expect(job.errors[0]).toMatchObject({ code: 'FORBIDDEN', task: 'Creating the test virtual machine' });
        const drill = (await getDrill(h.scope, vm2, drillId))!;
        expect(drill).toMatchObject({ state: 'Failed', cleanedUp: true, error: { code: 'FORBIDDEN' } });
        // It had created the VNet, two disks and a NIC: all gone, and the failover blobs too.
        expect(drill.resources.map((r) => r.kind).sort()).toEqual([
            'disk',
            'disk',
            'networkInterface',
            'virtualNetwork',
        ]);
        expect(await infra.listDrillResources(drillId)).toEqual([]);
        expect(await listFailoverDisks(h.scope.conn, vm2, drillId)).toEqual([]);
        expect(await getProtectedItem(h.scope, vm2)).toMatchObject({ testFailoverState: 'None' });
        // A new drill may start at once.
        const again = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm2}/testFailover`,
            params: { vmId: vm2, action: 'testFailover' },
        });
        expect(again.status).toBe(202);
    });

    it('refuses a second drill while one awaits cleanup, and a custom point that does not exist', async () => {
        const vm3 = uniqueName('vm3');
        const vm4 = uniqueName('vm4');
        await seedProtectedVm(h, vm3);
        const first = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm3}/testFailover`,
            params: { vmId: vm3, action: 'testFailover' },
        });
        await waitForJob(first.jsonBody!.instanceId);
        const second = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm3}/testFailover`,
            params: { vmId: vm3, action: 'testFailover' },
        });
        expect(second.status).toBe(409);
        expect(second.jsonBody!.error.message).toContain('test failover cleanup pending');

        await seedProtectedVm(h, vm4);
        const bad = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm4}/testFailover`,
            params: { vmId: vm4, action: 'testFailover' },
            body: { recoveryPoint: { type: 'Custom', recoveryPointId: `${vm4}:c9` } },
        });
        await waitForJob(bad.jsonBody!.instanceId);
        const job = (await getJob(h.scope, bad.jsonBody!.jobId))!;
        expect(job.errors[0]).toMatchObject({
            code: 'PREREQUISITE_FAILED',
            task: 'Prerequisites check for test failover',
        });
        expect(job.errors[0]!.message).toContain(`${vm4}:c9`);
        expect(await listDrills(h.scope, vm4)).toEqual([]);
    });

    it('fails over into the mapped subnet of the same name, stops replication, then commit drops the other points', async () => {
        const vm5 = uniqueName('vm5');
        await seedProtectedVm(h, vm5);
        const mapped = await h.http('apiNetworkMappings', {
            method: 'PUT',
            path: 'sites/site1/networkMappings/Corp',
            params: { siteId: 'site1', sourceNetwork: 'Corp' },
            body: {
                recoveryVnetId: VNET,
                recoverySubnets: ['default', 'Corp'],
                testVnetId: TEST_VNET,
                testSubnets: ['t'],
            },
        });
        expect(mapped.status).toBe(200);
        const started = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm5}/unplannedFailover`,
            params: { vmId: vm5, action: 'unplannedFailover' },
            body: { recoveryPoint: { type: 'Custom', recoveryPointId: `${vm5}:c1` }, cores: 4, memoryMiB: 12288 },
        });
        expect(started.status).toBe(202);
        await waitForJob(started.jsonBody!.instanceId);

        expect(await getJob(h.scope, started.jsonBody!.jobId)).toMatchObject({
            kind: 'UnplannedFailover',
            state: 'Succeeded',
        });
        const item = (await getProtectedItem(h.scope, vm5))!;
        expect(item).toMatchObject({
            protectionState: 'FailedOver',
            protectionStateDescription: 'Failed over',
            failoverRecoveryPointId: `${vm5}:c1`,
        });
        const stop = h.published.map((p) => p.input).find((e) => e.type === 'StopReplication');
        expect(stop).toMatchObject({ siteId: 'site1', vmId: vm5, payload: { vmId: vm5 } });
        const nic = infra.operations.find((o) => o.op === 'create' && o.kind === 'networkInterface')!;
        expect(nic.spec).toMatchObject({ subnetId: `${VNET}/subnets/Corp` });
        expect(infra.operations.some((o) => o.kind === 'virtualNetwork')).toBe(false);
        const vm = infra.operations.find((o) => o.kind === 'virtualMachine')!.spec as VirtualMachineSpec;
        expect(vm.vmSize).toBe('Standard_D4s_v5');

        const commit = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm5}/failoverCommit`,
            params: { vmId: vm5, action: 'failoverCommit' },
        });
        expect(commit.status).toBe(202);
        await waitForJob(commit.jsonBody!.instanceId);
        expect(await getProtectedItem(h.scope, vm5)).toMatchObject({
            protectionState: 'FailoverCommitted',
            protectionStateDescription: 'Failover committed',
        });
        const left = await listRecoveryPoints(h.scope, vm5);
        expect(left.map((p) => p.recoveryPointId)).toEqual([`${vm5}:c1`]);
        // The failed-over VM's resources stay: commit is not cleanup.
        expect(await infra.listDrillResources(started.jsonBody!.drillId)).toHaveLength(4);
    });

    it('fails an unplanned failover whose network has no mapping, creating nothing', async () => {
        const vm6 = uniqueName('vm6');
        await seedProtectedVm(h, vm6);
        const started = await h.http('apiFailoverAction', {
            method: 'POST',
            path: `replicationProtectedItems/${vm6}/unplannedFailover`,
            params: { vmId: vm6, action: 'unplannedFailover' },
            body: { networkAdapters: [{ sourceNetwork: 'Lab' }] },
        });
        await waitForJob(started.jsonBody!.instanceId);
        const job = (await getJob(h.scope, started.jsonBody!.jobId))!;
        expect(job.errors[0]).toMatchObject({ code: 'PREREQUISITE_FAILED' });
        expect(job.errors[0]!.message).toContain('Network Lab of site site1 has no network mapping');
        expect(await getProtectedItem(h.scope, vm6)).toMatchObject({ protectionState: 'FailoverFailed' });
        expect(infra.operations).toEqual([]);
    });
});
