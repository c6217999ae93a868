import '../../functions/apiFailover';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { failoverPageBlob, listFailoverDisks } from '../../shared/failover/failoverDisks';
import { VirtualMachineSpec } from '../../shared/failover/infrastructure';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { HvrError } from '../../shared/errors';
import { getDrill } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { listRecoveryPoints } from '../../shared/state/recoveryPoints';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { describeOnEngines, isFinished } from '../support/durableEngines';
import { uniqueName } from '../support/azurite';
import { action, mapCorp, seedFailoverVm } from './lifecycle/failoverSeed';
import { EngineHarness } from './lifecycle/engineHarness';

// The drill's 30 s copy poll and the retry delays, a thousand times faster (the real engine has no virtual clock).
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

const POINTS = [
    ['c1', 0x11],
    ['c2', 0x22],
    ['c3', 0x33],
] as const;

describeOnEngines('change recovery point before commit (Azurite, dry-run ARM)', (engine) => {
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
    const waitForInstance = (instanceId: string) => engine().waitFor(instanceId, isFinished);

    /** An unplanned failover to the latest point (c3); returns its drill id. */
    async function failedOver(vmId: string): Promise<string> {
        await seedFailoverVm(h, vmId, POINTS);
        await mapCorp(h);
        const started = await action(h, vmId, 'unplannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] });
        expect(started.status).toBe(202);
        await waitForInstance(started.jsonBody!.instanceId);
        expect(await getProtectedItem(h.scope, vmId)).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: `${vmId}:c3`,
        });
        return started.jsonBody!.drillId as string;
    }

    async function changeTo(vmId: string, recoveryPointId: string): Promise<string> {
        const started = await action(h, vmId, 'applyRecoveryPoint', { recoveryPointId });
        expect(started.status).toBe(202);
        expect(started.jsonBody).toMatchObject({ instanceId: `changerecoverypoint:${vmId}`, recoveryPointId });
        await waitForInstance(started.jsonBody!.instanceId);
        return started.jsonBody!.jobId as string;
    }

    async function failoverBytes(blobs: string[]): Promise<number[]> {
        const out: number[] = [];
        for (const b of blobs) out.push((await failoverPageBlob(h.scope.conn.blob, b).downloadToBuffer(0, 4096))[0]!);
        return out;
    }

    it('changes the point twice, then commit keeps the disks of the last one and drops every other point', async () => {
        const vm1 = uniqueName('vm1');
        const drillId = await failedOver(vm1);
        const firstVm = (await getDrill(h.scope, vm1, drillId))!.virtualMachineId;

        const toC1 = await changeTo(vm1, `${vm1}:c1`);
        const job = (await getJob(h.scope, toC1))!;
        expect(job).toMatchObject({
            kind: 'ApplyRecoveryPoint',
            displayName: 'Change recovery point',
            state: 'Succeeded',
        });
        expect(job.tasks.map((t) => t.state)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
        expect(job.tasks[2]!.detail).toBe(
            `The VM runs from recovery point ${vm1}:c1; the disks of ${vm1}:c3 were deleted`,
        );
        let drill = (await getDrill(h.scope, vm1, drillId))!;
        expect(drill).toMatchObject({ recoveryPointId: `${vm1}:c1`, cycleId: 'c1', state: 'Completed' });
        expect(await failoverBytes(drill.failoverBlobs)).toEqual([0x11, 0x11]);

        await changeTo(vm1, `${vm1}:c2`);
        drill = (await getDrill(h.scope, vm1, drillId))!;
        expect(drill.recoveryPointHistory!.map((p) => p.recoveryPointId)).toEqual([
            `${vm1}:c3`,
            `${vm1}:c1`,
            `${vm1}:c2`,
        ]);
        expect(drill.failoverBlobs).toEqual([`${vm1}/${drillId}/p3/data.vhd`, `${vm1}/${drillId}/p3/os.vhd`]);
        expect(await failoverBytes(drill.failoverBlobs)).toEqual([0x22, 0x22]);
        // The VM (same name, same NIC) now boots the c2 disks; the c3 and c1 disks and blobs are gone.
        expect(drill.virtualMachineId).toBe(firstVm);
        const lastVm = infra.operations.filter((o) => o.op === 'create' && o.kind === 'virtualMachine').at(-1)!;
        expect((lastVm.spec as VirtualMachineSpec).osDiskId).toMatch(/disk-os-p3$/);
        const left = await infra.listDrillResources(drillId);
        expect(left.map((r) => r.kind).sort()).toEqual(['disk', 'disk', 'networkInterface', 'virtualMachine']);
        expect(left.filter((r) => r.kind === 'disk').every((r) => r.name.endsWith('-p3'))).toBe(true);
        expect((await listFailoverDisks(h.scope.conn, vm1, drillId)).sort()).toEqual(drill.failoverBlobs);
        expect(drill.resources.map((r) => r.id).sort()).toEqual(left.map((r) => r.id).sort());
        expect(await getProtectedItem(h.scope, vm1)).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: `${vm1}:c2`,
        });

        const commit = await action(h, vm1, 'failoverCommit');
        expect(commit.status).toBe(202);
        await waitForInstance(commit.jsonBody!.instanceId);
        expect((await listRecoveryPoints(h.scope, vm1)).map((p) => p.recoveryPointId)).toEqual([`${vm1}:c2`]);
        expect(await getProtectedItem(h.scope, vm1)).toMatchObject({ protectionState: 'FailoverCommitted' });
        expect(await failoverBytes(drill.failoverBlobs)).toEqual([0x22, 0x22]);
        // Committed: the point can no longer change.
        const late = await action(h, vm1, 'applyRecoveryPoint', { recoveryPointId: `${vm1}:c2` });
        expect(late.status).toBe(409);
        expect(late.jsonBody!.error).toMatchObject({
            code: 'CONFLICT',
            allowedOperations: ['Failback', 'DisableProtection'],
        });
    });

    it('refuses a change in the wrong state, to an unknown point or to the point in use, naming what is allowed', async () => {
        const vm2 = uniqueName('vm2');
        const vm3 = uniqueName('vm3');
        await seedFailoverVm(h, vm2, POINTS);
        const protectedVm = await action(h, vm2, 'applyRecoveryPoint', { recoveryPointId: `${vm2}:c1` });
        expect(protectedVm.status).toBe(409);
        expect(protectedVm.jsonBody!.error.message).toContain('only after a failover and before its commit');
        expect(protectedVm.jsonBody!.error.allowedOperations).toEqual([
            'TestFailover',
            'PlannedFailover',
            'UnplannedFailover',
            'RepairReplication',
            'DisableProtection',
        ]);

        await failedOver(vm3);
        const unknown = await action(h, vm3, 'applyRecoveryPoint', { recoveryPointId: `${vm3}:c9` });
        expect(unknown.status).toBe(404);
        expect(unknown.jsonBody!.error).toMatchObject({
            code: 'NOT_FOUND',
            allowedOperations: ['ChangePit', 'Commit'],
        });
        expect(unknown.jsonBody!.error.message).toContain(`its points are ${vm3}:c3, ${vm3}:c2, ${vm3}:c1`);
        const same = await action(h, vm3, 'applyRecoveryPoint', { recoveryPointId: `${vm3}:c3` });
        expect(same.status).toBe(400);
        expect(same.jsonBody!.error.message).toContain(`already runs from recovery point ${vm3}:c3`);
        const none = await action(h, vm3, 'applyRecoveryPoint', {});
        expect(none.status).toBe(400);
        // Nothing started, nothing changed.
        expect(await getProtectedItem(h.scope, vm3)).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: `${vm3}:c3`,
        });
    });

    it('rolls a failed rebuild back: the VM runs from its previous disks again, the new disks and blobs are gone', async () => {
        const vm4 = uniqueName('vm4');
        const drillId = await failedOver(vm4);
        const before = (await getDrill(h.scope, vm4, drillId))!;
        const create = infra.createVirtualMachine.bind(infra);
        infra.createVirtualMachine = async (spec: VirtualMachineSpec) => {
            if (spec.osDiskId.endsWith('-p2')) {
                throw new HvrError('FORBIDDEN', 'The identity may not create virtual machines in dr-rg.');
            }
            return create(spec);
        };
        const jobId = await changeTo(vm4, `${vm4}:c1`);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.state).toBe('Failed');
        expect(job.errors[0]).toMatchObject({ code: 'FORBIDDEN', task: 'Replacing the disks of the virtual machine' });
        expect(job.errors[0]!.message).toContain(
            `The VM still runs from ${vm4}:c3; allowed operations: ChangePit, Commit.`,
        );
        const drill = (await getDrill(h.scope, vm4, drillId))!;
        expect(drill).toMatchObject({ recoveryPointId: `${vm4}:c3`, failoverBlobs: before.failoverBlobs });
        const lastVm = infra.operations.filter((o) => o.op === 'create' && o.kind === 'virtualMachine').at(-1)!;
        expect((lastVm.spec as VirtualMachineSpec).osDiskId).toBe(
            before.machine!.disks.find((d) => d.isOsDisk)!.resourceId,
        );
        const left = await infra.listDrillResources(drillId);
        expect(left.some((r) => r.name.endsWith('-p2'))).toBe(false);
        expect(left.map((r) => r.kind).sort()).toEqual(['disk', 'disk', 'networkInterface', 'virtualMachine']);
        expect((await listFailoverDisks(h.scope.conn, vm4, drillId)).sort()).toEqual(before.failoverBlobs);
        expect(await failoverBytes(before.failoverBlobs)).toEqual([0x33, 0x33]);
        expect(await getProtectedItem(h.scope, vm4)).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: `${vm4}:c3`,
        });
        // And it can be tried again (the identity fixed).
        infra.createVirtualMachine = create;
        await changeTo(vm4, `${vm4}:c1`);
        expect(await getProtectedItem(h.scope, vm4)).toMatchObject({ failoverRecoveryPointId: `${vm4}:c1` });
    });

    it('a change whose rebuild succeeded but whose old disks cannot be deleted says the VM runs from the new point', async () => {
        const vm5 = uniqueName('vm5');
        const drillId = await failedOver(vm5);
        const remove = infra.deleteResource.bind(infra);
        infra.deleteResource = async (resource) => {
            if (resource.kind === 'disk' && !resource.name.endsWith('-p2')) {
                throw new HvrError('FORBIDDEN', 'The identity may not delete disks in dr-rg.');
            }
            return remove(resource);
        };
        const jobId = await changeTo(vm5, `${vm5}:c1`);

        const job = (await getJob(h.scope, jobId))!;
        expect(job.errors[0]).toMatchObject({ code: 'FORBIDDEN', task: 'Replacing the disks of the virtual machine' });
        expect(job.errors[0]!.message).toContain(
            `The VM runs from ${vm5}:c1; some disks or blobs of ${vm5}:c3 may be left`,
        );
        // Nothing was rolled back over a VM that already runs from the new point: the record says so too.
        expect(await getProtectedItem(h.scope, vm5)).toMatchObject({
            protectionState: 'FailedOver',
            failoverRecoveryPointId: `${vm5}:c1`,
        });
        const drill = (await getDrill(h.scope, vm5, drillId))!;
        expect(drill.recoveryPointId).toBe(`${vm5}:c1`);
        expect(await failoverBytes(drill.failoverBlobs)).toEqual([0x11, 0x11]);
        // The old disks stay listed on the drill, so they can be found and removed.
        expect(drill.resources.filter((r) => r.kind === 'disk').map((r) => r.name.endsWith('-p2'))).toEqual(
            expect.arrayContaining([true, false]),
        );
    });
});
