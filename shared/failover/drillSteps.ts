import { HvrError } from '../errors';
import { Outcome, outcomeOf } from '../retry';
import { createDrill, Drill, DrillMachine, getDrill, updateDrill, withResources } from '../state/drills';
import { listNetworkMappings } from '../state/networkMappings';
import { getProtectedItem, ProtectedItem, stateScope } from '../state/protectedItems';
import { deleteRecoveryPoint, listRecoveryPoints } from '../state/recoveryPoints';
import { replicaPageBlob } from '../replica/replicaDisk';
import { deadline } from '../storage/deadline';
import {
    deleteFailoverDisks,
    FailoverDiskCopy,
    failoverDiskCopyStatus,
    FailoverDiskStatus,
    listFailoverDisks,
    plannedCopies,
    startFailoverDiskCopies,
} from './failoverDisks';
import { failoverResourceNames, failoverTags, FailoverResource, inDeleteOrder } from './infrastructure';
import { chooseSubnet, NetworkMapping, subnetId } from './networkMapping';
import { chooseRecoveryPoint, RecoveryPointChoice } from './recoveryPointChoice';
import { failoverInfrastructure } from './settings';
import { DrillState, FailoverKind } from './states';
import { chooseVmSize } from './vmSize';

/**
 * The steps of a drill or failover, as activity bodies: each returns an Outcome (expected failures as values,
 * their class kept) and is idempotent, so the orchestration can retry it on the retry schedule.
 */

/** What the operator may set for the recovered VM (ASR's "Compute and Network" settings of the item). */
export interface RecoverySettings {
    /** One entry per NIC: the on-premises network it is connected to. */
    networkAdapters?: { sourceNetwork: string }[];
    vmSize?: string;
    cores?: number;
    memoryMiB?: number;
    osType?: 'Windows' | 'Linux';
}

export interface DrillRequest {
    vmId: string;
    drillId: string;
    jobId: string;
    kind: FailoverKind;
    recoveryPoint: RecoveryPointChoice;
    settings: RecoverySettings;
    /** The orchestration's time. */
    at: string;
}

/** Where one NIC goes. `vnetId: undefined` means the drill's isolated VNet, made by the create step. */
export interface PlannedNic {
    name: string;
    sourceNetwork: string;
    vnetId?: string;
    subnet: string;
}

/** Everything the later steps need, decided once (and stored with the drill). */
export interface DrillPlan {
    vmId: string;
    drillId: string;
    kind: FailoverKind;
    recoveryPointId: string;
    capturedAt: string;
    copies: FailoverDiskCopy[];
    disks: { diskId: string; name: string; blobName: string; isOsDisk: boolean }[];
    nics: PlannedNic[];
    isolatedNetwork?: { name: string; subnets: string[] };
    vmName: string;
    vmSize: string;
    osType: 'Windows' | 'Linux';
    generation: 1 | 2;
}

function siteNetworks(_item: ProtectedItem, mappings: NetworkMapping[], settings: RecoverySettings): string[] {
    if (settings.networkAdapters && settings.networkAdapters.length > 0) {
        return settings.networkAdapters.map((n) => n.sourceNetwork);
    }
    // Without adapters described, a site with exactly one mapped network puts the one NIC there.
    if (mappings.length === 1) return [mappings[0]!.sourceNetwork];
    return ['default'];
}

/** Plans the NICs: production failover needs a mapping per network; a drill uses the test VNet or isolation. */
export function planNetwork(
    item: ProtectedItem,
    kind: FailoverKind,
    mappings: NetworkMapping[],
    settings: RecoverySettings,
    nicName: (index: number) => string,
    isolatedName: string,
): { nics: PlannedNic[]; isolatedNetwork?: { name: string; subnets: string[] } } {
    const networks = siteNetworks(item, mappings, settings);
    const byName = new Map(mappings.map((m) => [m.sourceNetwork.toLowerCase(), m]));
    const isolatedSubnets = [...new Set(networks)];
    let isolated = false;
    const nics = networks.map((sourceNetwork, i): PlannedNic => {
        const mapping = byName.get(sourceNetwork.toLowerCase());
        if (kind !== 'TestFailover') {
            if (!mapping) {
                throw new HvrError(
                    'PREREQUISITE_FAILED',
                    `Network ${sourceNetwork} of site ${item.siteId} has no network mapping; map it to an Azure VNet first.`,
                    { siteId: item.siteId, sourceNetwork },
                );
            }
            const choice = chooseSubnet(mapping.recoveryVnetId, mapping.recoverySubnets, sourceNetwork);
            return { name: nicName(i), sourceNetwork, vnetId: choice.vnetId, subnet: choice.subnet };
        }
        if (mapping?.testVnetId && mapping.testSubnets) {
            const choice = chooseSubnet(mapping.testVnetId, mapping.testSubnets, sourceNetwork);
            return { name: nicName(i), sourceNetwork, vnetId: choice.vnetId, subnet: choice.subnet };
        }
        isolated = true;
        return { name: nicName(i), sourceNetwork, subnet: sourceNetwork };
    });
    return isolated ? { nics, isolatedNetwork: { name: isolatedName, subnets: isolatedSubnets } } : { nics };
}

/** Checks the item, picks the recovery point, plans disks, network and size, and records the drill. */
export async function planDrill(request: DrillRequest): Promise<Outcome<DrillPlan>> {
    return outcomeOf(async () => {
        const { plan, drill } = await buildDrillPlan(request);
        await createDrill(stateScope(), drill);
        return plan;
    });
}

/**
 * The checks of planDrill without recording anything: what a planned failover verifies before it asks the
 * provider to shut the VM down (network mapping, disks, size, a point to fail over to).
 */
export async function checkFailoverPrerequisites(
    request: DrillRequest,
): Promise<Outcome<{ recoveryPointId: string; vmName: string }>> {
    return outcomeOf(async () => {
        const { plan } = await buildDrillPlan(request);
        return { recoveryPointId: plan.recoveryPointId, vmName: plan.vmName };
    });
}

async function buildDrillPlan(request: DrillRequest): Promise<{ plan: DrillPlan; drill: Drill }> {
    const scope = stateScope();
    const item = await getProtectedItem(scope, request.vmId);
    if (!item) throw new HvrError('NOT_FOUND', `VM ${request.vmId} is not protected.`);
    const point = chooseRecoveryPoint(await listRecoveryPoints(scope, request.vmId), request.recoveryPoint);
    const names = failoverResourceNames(item.vmName, request.drillId);
    const described = new Map(item.disks.map((d) => [d.diskId, d]));
    const copies = plannedCopies(point, request.drillId);
    const disks = copies.map((c) => ({
        diskId: c.diskId,
        name: names.disk(c.diskId),
        blobName: c.blobName,
        isOsDisk: described.get(c.diskId)?.isOsDisk ?? false,
    }));
    if (disks.filter((d) => d.isOsDisk).length !== 1) {
        throw new HvrError(
            'PREREQUISITE_FAILED',
            `Recovery point ${point.recoveryPointId} must hold exactly one OS disk; it holds ${disks.filter((d) => d.isOsDisk).length}.`,
        );
    }
    const mappings = await listNetworkMappings(scope, item.siteId);
    const network = planNetwork(item, request.kind, mappings, request.settings, names.nic, names.vnet);
    const plan: DrillPlan = {
        vmId: request.vmId,
        drillId: request.drillId,
        kind: request.kind,
        recoveryPointId: point.recoveryPointId,
        capturedAt: point.capturedAt,
        copies,
        disks,
        ...network,
        vmName: names.vm,
        vmSize: chooseVmSize(
            {
                cores: request.settings.cores,
                memoryMiB: request.settings.memoryMiB,
                dataDisks: disks.length - 1,
                nics: network.nics.length,
            },
            request.settings.vmSize,
        ),
        osType: request.settings.osType ?? 'Windows',
        generation: item.generation,
    };
    const drill: Drill = {
        vmId: request.vmId,
        drillId: request.drillId,
        kind: request.kind,
        state: 'InProgress',
        jobId: request.jobId,
        recoveryPointId: point.recoveryPointId,
        cycleId: point.cycleId,
        capturedAt: point.capturedAt,
        consistency: point.consistency,
        infrastructure: failoverInfrastructure().mode,
        failoverBlobs: copies.map((c) => c.blobName),
        resources: [],
        startedAt: request.at,
        cleanedUp: false,
    };
    return { plan, drill };
}

/** A cleanup (a cancelled test failover's, or the operator's) has begun or ended: nothing more is created. */
function cleanupHasBegun(state: DrillState): boolean {
    return state === 'CleaningUp' || state === 'CleanedUp' || state === 'CleanupFailed';
}

export async function startDrillCopies(plan: DrillPlan): Promise<Outcome<null>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        await startFailoverDiskCopies(scope.conn, plan.copies);
        // As createDrillResources: copies started once the cleanup of a cancelled drill began may be past its
        // deletes, so they are deleted here.
        const drill = await getDrill(scope, plan.vmId, plan.drillId);
        if (drill && cleanupHasBegun(drill.state)) {
            await deleteFailoverDisks(
                scope.conn,
                plan.copies.map((c) => c.blobName),
            );
            throw new HvrError(
                'CONFLICT',
                `Drill ${plan.drillId} is ${drill.state}: its failover disks were deleted again.`,
                { drillId: plan.drillId, state: drill.state },
            );
        }
        return null;
    });
}

/** Copy progress: `done` when every disk is ready; a failed copy is a non-recoverable failure. */
export async function drillCopyStatus(
    plan: DrillPlan,
): Promise<Outcome<{ done: boolean; disks: FailoverDiskStatus[] }>> {
    return outcomeOf(async () => {
        const disks = await failoverDiskCopyStatus(stateScope().conn, plan.copies);
        const failed = disks.find((d) => d.state === 'failed');
        if (failed) {
            throw new HvrError(
                'REPLICA_STATE_INVALID',
                `Failover disk ${failed.diskId} failed: ${failed.detail ?? ''}`,
            );
        }
        return { done: disks.every((d) => d.state === 'success'), disks };
    });
}

/**
 * Creates the VNet (drill isolation), the managed disks, the NICs and the VM, recording each resource on the drill
 * as soon as it exists. Every create is a PUT by name: a retry after a crash creates nothing twice.
 */
export async function createDrillResources(plan: DrillPlan): Promise<Outcome<{ virtualMachineId: string }>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        const infra = failoverInfrastructure();
        const tags = failoverTags(plan.vmId, plan.drillId, plan.kind);
        // Recorded only while no cleanup has begun (a conditional write; a change of recovery point creates on a
        // Completed failover). A cancelled test failover's
        // cleanup marks the drill CleaningUp before it looks for what to delete, and a terminated orchestration does
        // not stop this activity: a resource it can no longer record may be one the cleanup did not see, so it is
        // deleted here, and nothing more is created.
        const record = async (resource: FailoverResource): Promise<FailoverResource> => {
            let stoppedAs: string | undefined;
            await updateDrill(scope, plan.vmId, plan.drillId, (d) => {
                stoppedAs = cleanupHasBegun(d.state) ? d.state : undefined;
                return stoppedAs === undefined ? { resources: withResources(d.resources, [resource]) } : {};
            });
            if (stoppedAs !== undefined) {
                await infra.deleteResource(resource);
                throw new HvrError(
                    'CONFLICT',
                    `Drill ${plan.drillId} is ${stoppedAs}: ${resource.kind} ${resource.name} was deleted again and nothing more is created.`,
                    { drillId: plan.drillId, state: stoppedAs },
                );
            }
            return resource;
        };
        let isolatedVnetId: string | undefined;
        if (plan.isolatedNetwork) {
            const vnet = await record(await infra.createIsolatedNetwork({ ...plan.isolatedNetwork, tags }));
            isolatedVnetId = vnet.id;
        }
        const blobUrl = (blobName: string): string =>
            scope.conn.blob.getContainerClient('failover').getPageBlobClient(blobName).url;
        const diskIds = new Map<string, string>();
        for (const disk of plan.disks) {
            const created = await record(
                await infra.createManagedDisk({
                    name: disk.name,
                    sourceUri: blobUrl(disk.blobName),
                    isOsDisk: disk.isOsDisk,
                    osType: plan.osType,
                    generation: plan.generation,
                    tags,
                }),
            );
            diskIds.set(disk.diskId, created.id);
        }
        const nicIds: string[] = [];
        for (const nic of plan.nics) {
            const vnetId = nic.vnetId ?? isolatedVnetId;
            if (vnetId === undefined) throw new HvrError('INTERNAL', `NIC ${nic.name} has no VNet in the plan.`);
            const created = await record(
                await infra.createNetworkInterface({
                    name: nic.name,
                    subnetId: subnetId({ vnetId, subnet: nic.subnet }),
                    tags,
                }),
            );
            nicIds.push(created.id);
        }
        const os = plan.disks.find((d) => d.isOsDisk)!;
        const vm = await record(
            await infra.createVirtualMachine({
                name: plan.vmName,
                vmSize: plan.vmSize,
                osType: plan.osType,
                osDiskId: diskIds.get(os.diskId)!,
                dataDiskIds: plan.disks.filter((d) => !d.isOsDisk).map((d) => diskIds.get(d.diskId)!),
                nicIds,
                tags,
            }),
        );
        const machine: DrillMachine = {
            name: plan.vmName,
            vmSize: plan.vmSize,
            osType: plan.osType,
            generation: plan.generation,
            nicIds,
            disks: [os, ...plan.disks.filter((d) => !d.isOsDisk)].map((d) => ({
                diskId: d.diskId,
                isOsDisk: d.isOsDisk,
                resourceId: diskIds.get(d.diskId)!,
                name: d.name,
            })),
        };
        await updateDrill(scope, plan.vmId, plan.drillId, () => ({ virtualMachineId: vm.id, machine }));
        return { virtualMachineId: vm.id };
    });
}

/**
 * Deletes everything the drill created: the recorded resources plus any resource tagged with the drill id, VM
 * first; then the failover blobs, recorded or found under the drill's prefix. Safe to run again.
 */
export async function cleanUpDrill(input: { vmId: string; drillId: string }): Promise<Outcome<{ deleted: string[] }>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        const drill = await getDrill(scope, input.vmId, input.drillId);
        if (!drill) throw new HvrError('NOT_FOUND', `Drill ${input.drillId} of VM ${input.vmId} does not exist.`);
        const infra = failoverInfrastructure();
        const tagged = await infra.listDrillResources(input.drillId);
        const deleted: string[] = [];
        for (const resource of inDeleteOrder([...drill.resources, ...tagged])) {
            if (await infra.deleteResource(resource)) deleted.push(resource.id);
        }
        const blobs = [
            ...new Set([...drill.failoverBlobs, ...(await listFailoverDisks(scope.conn, input.vmId, input.drillId))]),
        ];
        deleted.push(...(await deleteFailoverDisks(scope.conn, blobs)));
        return { deleted };
    });
}

/** Commit: drops every recovery point of the VM except the one failed over to (rows first, then snapshots). */
export async function dropOtherRecoveryPoints(input: {
    vmId: string;
    keepRecoveryPointId: string;
}): Promise<Outcome<{ dropped: string[] }>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        const dropped: string[] = [];
        for (const point of await listRecoveryPoints(scope, input.vmId)) {
            if (point.recoveryPointId === input.keepRecoveryPointId) continue;
            await deleteRecoveryPoint(scope, input.vmId, point.cycleId);
            for (const s of Object.values(point.disks)) {
                await replicaPageBlob(scope.conn.blob, s.blobName)
                    .withSnapshot(s.snapshot)
                    .deleteIfExists({ abortSignal: deadline() });
            }
            dropped.push(point.recoveryPointId);
        }
        return { dropped };
    });
}

/** Drill bookkeeping described by the orchestrator (with its time). */
export async function recordDrill(input: {
    vmId: string;
    drillId: string;
    changes: Partial<Omit<Drill, 'vmId' | 'drillId'>>;
}): Promise<void> {
    await updateDrill(stateScope(), input.vmId, input.drillId, () => input.changes);
}
