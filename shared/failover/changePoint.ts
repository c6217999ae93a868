import { HvrError } from '../errors';
import { Outcome, outcomeOf } from '../retry';
import { Drill, DrillMachine, getDrill, updateDrill, withResources } from '../state/drills';
import { stateScope } from '../state/protectedItems';
import { listRecoveryPoints } from '../state/recoveryPoints';
import { deleteFailoverDisks, FailoverDiskCopy, failoverPageBlob, plannedCopies } from './failoverDisks';
import { FailoverResource, failoverTags } from './infrastructure';
import { chooseRecoveryPoint } from './recoveryPointChoice';
import { failoverInfrastructure } from './settings';

/**
 * Change recovery point (ASR's applyRecoveryPoint) of a failed-over VM, before commit: the other point's disks
 * are copied into new failover blobs and imported as new managed disks, the VM is rebuilt on them (same name,
 * size and NICs), then the previous disks and blobs go. Until the rebuild, the VM keeps running from its point;
 * a change that fails is rolled back to it. Commit later drops every point but the one in use.
 */

export interface PointChangeRequest {
    vmId: string;
    drillId: string;
    jobId: string;
    recoveryPointId: string;
    at: string;
}

export interface PointChangePlan {
    vmId: string;
    drillId: string;
    jobId: string;
    recoveryPointId: string;
    cycleId: string;
    capturedAt: string;
    consistency: Drill['consistency'];
    /** Same shape as a drill plan's, so the drill's copy activities serve. */
    copies: FailoverDiskCopy[];
    /** The VM as it will be rebuilt. */
    machine: DrillMachine;
    /** The VM as it runs now: what the rollback restores and what the change deletes once done. */
    previous: { recoveryPointId: string; machine: DrillMachine; failoverBlobs: string[] };
    tags: Record<string, string>;
    virtualMachineId: string;
    /** The orchestration's time when the change was planned (recorded in the drill's history). */
    at: string;
}

/** A point change's own folder and disk names: `{vmId}/{drillId}/p{n}/…`, `…-p{n}`, never the current ones. */
function generationOf(drill: Drill): number {
    return (drill.recoveryPointHistory?.length ?? 1) + 1;
}

/** Checks the drill and the point and plans the change; nothing is written. */
export async function planPointChange(request: PointChangeRequest): Promise<Outcome<PointChangePlan>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        const drill = await getDrill(scope, request.vmId, request.drillId);
        if (!drill || drill.kind === 'TestFailover' || drill.state !== 'Completed' || !drill.virtualMachineId) {
            throw new HvrError(
                'PREREQUISITE_FAILED',
                `VM ${request.vmId} has no completed failover ${request.drillId} to change the recovery point of.`,
            );
        }
        if (!drill.machine) {
            throw new HvrError(
                'PREREQUISITE_FAILED',
                `Failover ${request.drillId} does not record how its VM was built; fail over again to change its point.`,
            );
        }
        const points = await listRecoveryPoints(scope, request.vmId);
        const point = chooseRecoveryPoint(points, { type: 'Custom', recoveryPointId: request.recoveryPointId });
        if (point.recoveryPointId === drill.recoveryPointId) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `VM ${request.vmId} already runs from recovery point ${point.recoveryPointId}; name another one.`,
            );
        }
        const generation = generationOf(drill);
        const copies = plannedCopies(point, `${request.drillId}/p${generation}`);
        const current = drill.machine;
        const byDisk = new Map(current.disks.map((d) => [d.diskId, d]));
        for (const c of copies) {
            if (!byDisk.has(c.diskId)) {
                throw new HvrError(
                    'PREREQUISITE_FAILED',
                    `Recovery point ${point.recoveryPointId} holds disk ${c.diskId}, which the failed-over VM has not.`,
                );
            }
        }
        if (copies.length !== current.disks.length) {
            throw new HvrError(
                'PREREQUISITE_FAILED',
                `Recovery point ${point.recoveryPointId} holds ${copies.length} disks; the failed-over VM has ${current.disks.length}.`,
            );
        }
        const machine: DrillMachine = {
            ...current,
            disks: current.disks.map((d) => {
                const name = `${d.name.replace(/-p\d+$/, '')}-p${generation}`;
                return { ...d, name, resourceId: '' };
            }),
        };
        return {
            vmId: request.vmId,
            drillId: request.drillId,
            jobId: request.jobId,
            recoveryPointId: point.recoveryPointId,
            cycleId: point.cycleId,
            capturedAt: point.capturedAt,
            consistency: point.consistency,
            copies,
            machine,
            previous: {
                recoveryPointId: drill.recoveryPointId,
                machine: current,
                failoverBlobs: drill.failoverBlobs,
            },
            tags: failoverTags(request.vmId, request.drillId, drill.kind),
            virtualMachineId: drill.virtualMachineId,
            at: request.at,
        };
    });
}

function vmResource(plan: PointChangePlan): FailoverResource {
    return { kind: 'virtualMachine', name: plan.machine.name, id: plan.virtualMachineId };
}

/** Creates the VM of `machine` (by name: a retry repeats it harmlessly). */
async function buildVm(plan: PointChangePlan, machine: DrillMachine): Promise<FailoverResource> {
    const os = machine.disks.find((d) => d.isOsDisk);
    if (!os) throw new HvrError('INTERNAL', `The failed-over VM ${machine.name} has no OS disk in its record.`);
    return failoverInfrastructure().createVirtualMachine({
        name: machine.name,
        vmSize: machine.vmSize,
        osType: machine.osType,
        osDiskId: os.resourceId,
        dataDiskIds: machine.disks.filter((d) => !d.isOsDisk).map((d) => d.resourceId),
        nicIds: machine.nicIds,
        tags: plan.tags,
    });
}

/**
 * Imports the new disks, rebuilds the VM on them, records the new point on the drill, then deletes the previous
 * disks and blobs. Each step is idempotent, so the orchestration retries the whole activity.
 */
export async function replaceFailoverVmDisks(plan: PointChangePlan): Promise<Outcome<{ deleted: string[] }>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        const infra = failoverInfrastructure();
        const drill = await getDrill(scope, plan.vmId, plan.drillId);
        if (!drill) throw new HvrError('NOT_FOUND', `Drill ${plan.drillId} of VM ${plan.vmId} does not exist.`);
        const blobOf = new Map(plan.copies.map((c) => [c.diskId, c.blobName]));
        const created: DrillMachine['disks'] = [];
        for (const disk of plan.machine.disks) {
            const resource = await infra.createManagedDisk({
                name: disk.name,
                sourceUri: failoverPageBlob(scope.conn.blob, blobOf.get(disk.diskId)!).url,
                isOsDisk: disk.isOsDisk,
                osType: plan.machine.osType,
                generation: plan.machine.generation,
                tags: plan.tags,
            });
            await updateDrill(scope, plan.vmId, plan.drillId, (d) => ({
                resources: withResources(d.resources, [resource]),
            }));
            created.push({ ...disk, resourceId: resource.id });
        }
        const machine: DrillMachine = { ...plan.machine, disks: created };
        // A VM's OS disk cannot be swapped for an imported one in place: the VM is rebuilt, keeping its NICs.
        await infra.deleteResource(vmResource(plan));
        const vm = await buildVm(plan, machine);
        const previousDiskIds = new Set(plan.previous.machine.disks.map((d) => d.resourceId.toLowerCase()));
        await updateDrill(scope, plan.vmId, plan.drillId, (d) => ({
            recoveryPointId: plan.recoveryPointId,
            cycleId: plan.cycleId,
            capturedAt: plan.capturedAt,
            consistency: plan.consistency,
            failoverBlobs: plan.copies.map((c) => c.blobName),
            machine,
            virtualMachineId: vm.id,
            resources: withResources(d.resources, [vm]),
            recoveryPointHistory: [
                ...(d.recoveryPointHistory ?? []).filter((h) => h.jobId !== plan.jobId),
                { recoveryPointId: plan.recoveryPointId, appliedAt: plan.at, jobId: plan.jobId },
            ],
        }));
        const deleted: string[] = [];
        for (const disk of plan.previous.machine.disks) {
            if (await infra.deleteResource({ kind: 'disk', name: disk.name, id: disk.resourceId })) {
                deleted.push(disk.resourceId);
            }
        }
        deleted.push(...(await deleteFailoverDisks(scope.conn, plan.previous.failoverBlobs)));
        await updateDrill(scope, plan.vmId, plan.drillId, (d) => ({
            resources: d.resources.filter((r) => !previousDiskIds.has(r.id.toLowerCase())),
        }));
        return { deleted };
    });
}

/**
 * Undoes a change that failed: unless the drill already records the new point, the VM is rebuilt on its previous
 * disks (when the rebuild had begun: `vmTouched`) and the disks and blobs the change created go. Safe to run again.
 * Returns the point the VM runs from afterwards.
 */
export async function rollBackPointChange(input: {
    plan: PointChangePlan;
    vmTouched: boolean;
}): Promise<Outcome<{ deleted: string[]; inUse: string }>> {
    return outcomeOf(async () => {
        const { plan } = input;
        const scope = stateScope();
        const infra = failoverInfrastructure();
        const drill = await getDrill(scope, plan.vmId, plan.drillId);
        if (!drill) throw new HvrError('NOT_FOUND', `Drill ${plan.drillId} of VM ${plan.vmId} does not exist.`);
        // The rebuild went through and only removing the previous disks failed: nothing to undo.
        if (drill.recoveryPointId === plan.recoveryPointId) return { deleted: [], inUse: plan.recoveryPointId };
        let vm: FailoverResource | undefined;
        if (input.vmTouched) {
            await infra.deleteResource(vmResource(plan));
            vm = await buildVm(plan, plan.previous.machine);
        }
        const names = new Set(plan.machine.disks.map((d) => d.name));
        const tagged = await infra.listDrillResources(plan.drillId);
        const newDisks = [...drill.resources, ...tagged].filter((r) => r.kind === 'disk' && names.has(r.name));
        const deleted: string[] = [];
        for (const disk of newDisks) {
            if (await infra.deleteResource(disk)) deleted.push(disk.id);
        }
        deleted.push(
            ...(await deleteFailoverDisks(
                scope.conn,
                plan.copies.map((c) => c.blobName),
            )),
        );
        const gone = new Set(newDisks.map((d) => d.id.toLowerCase()));
        await updateDrill(scope, plan.vmId, plan.drillId, (d) => ({
            ...(vm ? { virtualMachineId: vm.id } : {}),
            resources: withResources(
                d.resources.filter((r) => !gone.has(r.id.toLowerCase())),
                vm ? [vm] : [],
            ),
        }));
        return { deleted, inUse: plan.previous.recoveryPointId };
    });
}
