import { join } from 'node:path';
import { CycleLog, ShutdownForFailoverEvent } from '../../shared/contracts/messages';
import { FAILOVER_CONTAINER } from '../../shared/failover/failoverDisks';
import { deadline } from '../../shared/storage/deadline';
import { DrillView } from './managementClient';
import { ProviderChannel, StepIncomplete } from '../../packages/provider-kit/src';
import { QemuVerdict } from './qemuCompare';
import { compareReplicaTwice } from './replicaCheck';
import { DrillContext, drillOf, FailoverDiskComparison, waitForJob } from './testFailoverDrill';

/**
 * A production failover of one simulated VM as an operator runs a migration: planned (the provider shuts the VM
 * down while the guest is still writing, ships the final cycle, the pipeline fails over onto it) or unplanned
 * (the latest point), optionally a change of recovery point to an older one, then commit. Every failover disk is
 * downloaded and compared with the source as it was at the point in use, in-process and with qemu-img.
 */
export type FailoverMode = 'planned' | 'unplanned';

const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

/** The guest and provider side of a planned failover (the simulation owns the disks and their chains). */
export interface PlannedFailoverGuest {
    /** Starts the guest writing; the function it returns stops it and resolves once the last write is on disk. */
    startWriting(): () => Promise<void>;
    /** Uploads every write since the last cycle as the final cycle `cycleId` (after the shutdown); its logs. */
    shipFinalCycle(cycleId: string): Promise<CycleLog[]>;
    /** Bytes the guest wrote since the last cycle (for the report). */
    pendingBytes(): number;
}

export interface FailoverTarget {
    vmId: string;
    diskIds: string[];
    /** The cycle of the VM's last recovery point (an unplanned failover restores it). */
    lastCycleId: string;
    /** Planned failover: the guest that keeps writing until the shutdown. */
    guest?: PlannedFailoverGuest;
    /** Change recovery point: the older cycle to move to and its sources as they were then, per disk. */
    olderPoint?: { cycleId: string; rawPaths: Record<string, string> };
}

export interface FailoverRunContext extends DrillContext {
    provider: ProviderChannel;
}

/** One failover disk against the source at the point in use, with qemu-img's verdict. */
export interface CheckedFailoverDisk extends FailoverDiskComparison {
    qemuImg: QemuVerdict;
}

export interface FailoverReport {
    vmId: string;
    kind: 'PlannedFailover' | 'UnplannedFailover';
    jobId: string;
    drillId: string;
    recoveryPointId: string;
    /** Seconds of writes the failover lost: 0 for a planned failover. */
    rpoSeconds: number;
    /** After a change of recovery point: the point the VM runs from at commit. */
    changedTo?: string;
    /** Recovery points left after commit (1: the one in use). */
    pointsAfterCommit: number;
    disks: CheckedFailoverDisk[];
}

/**
 * Downloads the drill's failover disks (the blob of each disk, wherever the drill keeps it) to
 * `DIR/{vmId}/{diskId}.{label}.vhd` and compares each with `rawPaths[diskId]`.
 */
async function checkDisks(
    ctx: DrillContext,
    vmId: string,
    drill: DrillView,
    rawPaths: Record<string, string>,
    label: string,
): Promise<CheckedFailoverDisk[]> {
    const out: CheckedFailoverDisk[] = [];
    for (const [diskId, rawPath] of Object.entries(rawPaths)) {
        const vhdPath = join(ctx.outDir, vmId, `${diskId}.${label}.vhd`);
        const base = {
            vmId,
            diskId,
            rawPath,
            vhdPath,
            drillId: drill.name,
            recoveryPointId: drill.properties.recoveryPointId,
        };
        const blobName = drill.properties.failoverBlobs.find(
            (b) => b.startsWith(`${vmId}/${drill.name}/`) && b.endsWith(`/${diskId}.vhd`),
        );
        if (!blobName) {
            out.push({
                ...base,
                equal: false,
                qemuImg: 'unavailable',
                problem: `the drill lists no failover blob for ${diskId}`,
            });
            continue;
        }
        await ctx.blob
            .getContainerClient(FAILOVER_CONTAINER)
            .getBlobClient(blobName)
            .downloadToFile(vhdPath, 0, undefined, { abortSignal: deadline(DOWNLOAD_TIMEOUT_MS) });
        const { equal, problem, qemuImg } = await compareReplicaTwice(rawPath, vhdPath);
        out.push({ ...base, equal, qemuImg, ...(problem ? { problem } : {}) });
        ctx.say(
            `${vmId}/${diskId}: ${equal ? 'failover disk equals' : 'failover disk DIFFERS from'} the source at ` +
                `${drill.properties.recoveryPointId}${problem ? ` (${problem})` : ''}; qemu-img: ${qemuImg}`,
        );
    }
    return out;
}

function sourcesNow(ctx: DrillContext, target: FailoverTarget): Record<string, string> {
    return Object.fromEntries(target.diskIds.map((d) => [d, join(ctx.outDir, target.vmId, `${d}.raw`)]));
}

/** Planned: starts the guest writing, asks for the failover, answers the shutdown with the final cycle. */
async function plannedFailover(ctx: FailoverRunContext, target: FailoverTarget, step: string) {
    const guest = target.guest;
    if (!guest) throw new StepIncomplete(step, 'no guest to shut down (internal)');
    const stopWriting = guest.startWriting();
    let stopped = false;
    const stop = async () => {
        if (!stopped) await stopWriting();
        stopped = true;
    };
    try {
        const accepted = await ctx.api.failover(target.vmId, 'plannedFailover');
        ctx.say(`${target.vmId}: planned failover accepted (job ${accepted.jobId}); the guest keeps writing`);
        const shutdown = await ctx.provider.waitForEvent(
            (e): e is ShutdownForFailoverEvent => e.type === 'ShutdownForFailover' && e.vmId === target.vmId,
            ctx.stepTimeoutMs,
            `ShutdownForFailover for ${target.vmId}`,
            () => ctx.describe(target.vmId),
        );
        await stop();
        const shutDownAt = new Date().toISOString();
        ctx.say(
            `${target.vmId}: shut down for failover ${shutdown.failoverId} after ${guest.pendingBytes()} bytes ` +
                'written since the last cycle; shipping them as the final cycle',
        );
        const cycleId = 'final';
        const logs = await guest.shipFinalCycle(cycleId);
        await ctx.provider.send({
            type: 'FailoverShutdownCompleted',
            version: 1,
            vmId: target.vmId,
            failoverId: shutdown.failoverId,
            shutDownAt,
            cycleId,
            logs,
        });
        return { accepted, cycleId };
    } finally {
        await stop();
    }
}

/**
 * Fails the VM over (planned or unplanned), checks its disks, optionally changes to the older point and checks
 * those, then commits and checks that only the point in use is left. Jobs that do not succeed and an RPO other
 * than 0 after a planned failover are StepIncomplete; differing disks are in the report.
 */
export async function runFailover(
    ctx: FailoverRunContext,
    target: FailoverTarget,
    mode: FailoverMode,
): Promise<FailoverReport> {
    const { vmId } = target;
    const step = `${mode} failover of ${vmId}`;
    let accepted;
    let expectedCycle = target.lastCycleId;
    try {
        if (mode === 'planned') {
            const planned = await plannedFailover(ctx, target, step);
            accepted = planned.accepted;
            expectedCycle = planned.cycleId;
        } else {
            accepted = await ctx.api.failover(vmId, 'unplannedFailover');
            ctx.say(`${vmId}: unplanned failover accepted (job ${accepted.jobId})`);
        }
    } catch (err) {
        if (err instanceof StepIncomplete) throw err;
        throw new StepIncomplete(step, `${(err as Error).message}; ${await ctx.describe(vmId)}`);
    }
    const drillId = accepted.drillId;
    if (!drillId) throw new StepIncomplete(step, `the 202 answer names no drillId: ${JSON.stringify(accepted)}`);
    await waitForJob(ctx, accepted.jobId, step);
    const drill = await drillOf(ctx, vmId, drillId, step);
    if (drill.properties.state !== 'Completed') {
        throw new StepIncomplete(step, `the job succeeded but drill ${drillId} is ${drill.properties.state}`);
    }
    const rpoSeconds = drill.properties.rpoSeconds;
    if (drill.properties.cycleId !== expectedCycle) {
        throw new StepIncomplete(
            step,
            `failed over to ${drill.properties.recoveryPointId}; expected cycle ${expectedCycle}`,
        );
    }
    if (rpoSeconds === undefined || (mode === 'planned' && rpoSeconds !== 0)) {
        throw new StepIncomplete(
            step,
            `the failover reports RPO ${String(rpoSeconds)} s; a planned failover loses nothing (0)`,
        );
    }
    ctx.say(`${vmId}: failed over to ${drill.properties.recoveryPointId}, RPO ${rpoSeconds} s`);
    const disks = await checkDisks(ctx, vmId, drill, sourcesNow(ctx, target), 'failover');
    const report: FailoverReport = {
        vmId,
        kind: mode === 'planned' ? 'PlannedFailover' : 'UnplannedFailover',
        jobId: accepted.jobId,
        drillId,
        recoveryPointId: drill.properties.recoveryPointId,
        rpoSeconds,
        pointsAfterCommit: -1,
        disks,
    };

    if (target.olderPoint) {
        const older = `${vmId}:${target.olderPoint.cycleId}`;
        const changeStep = `change recovery point of ${vmId} to ${older}`;
        const change = await ctx.api.applyRecoveryPoint(vmId, older).catch(async (err: Error) => {
            throw new StepIncomplete(changeStep, `${err.message}; ${await ctx.describe(vmId)}`);
        });
        await waitForJob(ctx, change.jobId, changeStep);
        const changed = await drillOf(ctx, vmId, drillId, changeStep);
        if (changed.properties.recoveryPointId !== older) {
            throw new StepIncomplete(changeStep, `the failover runs from ${changed.properties.recoveryPointId}`);
        }
        ctx.say(`${vmId}: recovery point changed to ${older}; checking its disks`);
        report.disks.push(...(await checkDisks(ctx, vmId, changed, target.olderPoint.rawPaths, 'changed')));
        report.changedTo = older;
    }

    const commitStep = `commit of the failover of ${vmId}`;
    const commit = await ctx.api.failoverCommit(vmId).catch(async (err: Error) => {
        throw new StepIncomplete(commitStep, `${err.message}; ${await ctx.describe(vmId)}`);
    });
    await waitForJob(ctx, commit.jobId, commitStep);
    const points = await ctx.api.recoveryPoints(vmId);
    const inUse = report.changedTo ?? report.recoveryPointId;
    if (points.length !== 1 || points[0]!.name !== inUse) {
        throw new StepIncomplete(
            commitStep,
            `after commit the VM has points ${points.map((p) => p.name).join(', ') || 'none'}; expected only ${inUse}`,
        );
    }
    report.pointsAfterCommit = points.length;
    ctx.say(`${vmId}: failover committed on ${inUse}; the other recovery points are gone`);
    return report;
}
