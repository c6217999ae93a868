import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { ensureErrorType } from '../../shared/errors';
import { FAILOVER_CONTAINER } from '../../shared/failover/failoverDisks';
import { deadline } from '../../shared/storage/deadline';
import { DrillView, JobView, ManagementClient } from './managementClient';
import { StepIncomplete } from '../../packages/provider-kit/src';
import { compareReplicaTwice, ReplicaComparison } from './replicaCheck';

/** A failover disk downloads whole, like a replica: bounded all the same. */
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;
const POLL_MS = 250;
const FINISHED_JOB_STATES: ReadonlySet<string> = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** One failover disk of a drill against the source disk as it was at the drill's recovery point. */
export interface FailoverDiskComparison extends ReplicaComparison {
    drillId: string;
    recoveryPointId: string;
}

/** What a drill needs to know of one simulated VM. */
export interface DrillTarget {
    vmId: string;
    diskIds: string[];
    /**
     * The cycle of the VM's last recovery point (the one `Latest` must pick): the sources on disk are exactly
     * that cycle's, since the guest writes nothing after it.
     */
    lastCycleId: string;
    /** The point to test-fail over to (default Latest), and the sources as they were at it (default the `.raw` files). */
    recoveryPoint?: { type: string };
    rawPaths?: Record<string, string>;
}

export interface DrillContext {
    api: ManagementClient;
    blob: BlobServiceClient;
    outDir: string;
    stepTimeoutMs: number;
    say: (line: string) => void;
    /** Why the VM is where it is, from the API (for a step that does not complete). */
    describe: (vmId: string) => Promise<string>;
}

function jobProblem(job: JobView): string {
    const failedTask = job.tasks.find((t) => t.state === 'Failed');
    return (
        `job "${job.displayName}" ${job.state}` +
        (failedTask ? ` at task "${failedTask.name}"` : '') +
        job.errors.map((e) => `; ${e.task ?? ''} ${e.code}: ${e.message}`).join('')
    );
}

/** Polls the job until it finishes; StepIncomplete unless it succeeded. */
export async function waitForJob(ctx: DrillContext, jobId: string, step: string): Promise<JobView> {
    const until = Date.now() + ctx.stepTimeoutMs;
    for (;;) {
        const job = await ctx.api.job(jobId).catch(() => undefined);
        if (job && FINISHED_JOB_STATES.has(job.state)) {
            if (job.state !== 'Succeeded') throw new StepIncomplete(step, jobProblem(job));
            return job;
        }
        if (Date.now() > until) {
            const where = job ? jobProblem(job) : `job ${jobId} not found`;
            throw new StepIncomplete(step, `not done after ${ctx.stepTimeoutMs / 1000} s: ${where}`);
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
    }
}

export async function drillOf(ctx: DrillContext, vmId: string, drillId: string, step: string): Promise<DrillView> {
    const drill = (await ctx.api.drills(vmId)).find((d) => d.name === drillId);
    if (!drill) throw new StepIncomplete(step, `GET .../${vmId}/drills does not list drill ${drillId}`);
    return drill;
}

/**
 * Downloads the drill's failover disks to `DIR/{vmId}/{diskId}.failover.vhd` and compares each with the source
 * as it was at the restored point. A point other than the VM's last cycle, a blob outside the drill's folder or
 * a disk without a failover blob is a difference, named.
 */
export async function checkFailoverDisks(
    ctx: DrillContext,
    target: DrillTarget,
    drill: DrillView,
): Promise<FailoverDiskComparison[]> {
    const { vmId } = target;
    const drillId = drill.name;
    const { recoveryPointId, cycleId } = drill.properties;
    const prefix = `${vmId}/${drillId}/`;
    const out: FailoverDiskComparison[] = [];
    for (const diskId of target.diskIds) {
        const rawPath = target.rawPaths?.[diskId] ?? join(ctx.outDir, vmId, `${diskId}.raw`);
        const vhdPath = join(ctx.outDir, vmId, `${diskId}.failover.vhd`);
        const base = { vmId, diskId, rawPath, vhdPath, drillId, recoveryPointId };
        if (cycleId !== target.lastCycleId) {
            out.push({
                ...base,
                equal: false,
                problem: `the drill restored ${recoveryPointId} (${cycleId}); the latest point is ${target.lastCycleId}`,
            });
            continue;
        }
        const blobName = (drill.properties.failoverBlobs ?? []).find((b) => b === `${prefix}${diskId}.vhd`);
        if (!blobName) {
            out.push({
                ...base,
                equal: false,
                problem: `the drill lists no failover blob ${prefix}${diskId}.vhd (it lists ${JSON.stringify(drill.properties.failoverBlobs)})`,
            });
            continue;
        }
        await ctx.blob
            .getContainerClient(FAILOVER_CONTAINER)
            .getBlobClient(blobName)
            .downloadToFile(vhdPath, 0, undefined, { abortSignal: deadline(DOWNLOAD_TIMEOUT_MS) });
        out.push({ ...base, ...(await compareReplicaTwice(rawPath, vhdPath)) });
    }
    return out;
}

/** The failover blobs still under `failover/{vmId}/{drillId}/` (none once the drill is cleaned up). */
export async function remainingFailoverBlobs(ctx: DrillContext, vmId: string, drillId: string): Promise<string[]> {
    const names: string[] = [];
    const container = ctx.blob.getContainerClient(FAILOVER_CONTAINER);
    for await (const item of container.listBlobsFlat({ prefix: `${vmId}/${drillId}/`, abortSignal: deadline() })) {
        names.push(item.name);
    }
    return names;
}

/**
 * A test failover drill of one VM as an operator runs it: test failover to the latest point (isolated network,
 * dry-run infrastructure on the simulator's host), its disks downloaded and compared with the sources, then
 * the cleanup, whose end is checked on the drill row and in the `failover` container. Jobs that do not
 * succeed and a cleanup that leaves something behind are StepIncomplete; differing disks are returned.
 */
export async function runTestFailoverDrill(ctx: DrillContext, target: DrillTarget): Promise<FailoverDiskComparison[]> {
    const { vmId } = target;
    const step = `test failover of ${vmId}`;
    let accepted;
    try {
        accepted = await ctx.api.testFailover(vmId, target.recoveryPoint);
    } catch (err) {
        throw new StepIncomplete(step, `${(err as Error).message}; ${await ctx.describe(vmId)}`);
    }
    const drillId = accepted.drillId;
    if (!drillId) throw new StepIncomplete(step, `the 202 answer names no drillId: ${JSON.stringify(accepted)}`);
    ctx.say(`${vmId}: test failover accepted (job ${accepted.jobId}, drill ${drillId})`);
    await waitForJob(ctx, accepted.jobId, step);
    const drill = await drillOf(ctx, vmId, drillId, step);
    ctx.say(
        `${vmId}: test failover succeeded from ${drill.properties.recoveryPointId} ` +
            `(${drill.properties.infrastructure}); downloading ${drill.properties.failoverBlobs.length} failover disk(s)`,
    );

    // Compare before cleanup (which deletes the blobs), but clean up whatever the comparison says.
    let disks: FailoverDiskComparison[] = [];
    let compareError: Error | undefined;
    try {
        disks = await checkFailoverDisks(ctx, target, drill);
        for (const d of disks) {
            ctx.say(
                `${vmId}/${d.diskId}: ${d.equal ? 'failover disk equals source' : `failover disk DIFFERS: ${d.problem}`}; qemu-img: ${d.qemuImg ?? 'not run'}`,
            );
        }
    } catch (err) {
        compareError = ensureErrorType(err);
    }

    const cleanupStep = `test failover cleanup of ${vmId}`;
    const cleanup = await ctx.api.testFailoverCleanup(vmId, 'hvr simulate drill').catch(async (err: Error) => {
        throw new StepIncomplete(cleanupStep, `${err.message}; ${await ctx.describe(vmId)}`);
    });
    await waitForJob(ctx, cleanup.jobId, cleanupStep);
    const cleaned = await drillOf(ctx, vmId, drillId, cleanupStep);
    if (cleaned.properties.state !== 'CleanedUp' || !cleaned.properties.cleanedUp) {
        throw new StepIncomplete(
            cleanupStep,
            `drill ${drillId} is ${cleaned.properties.state} (cleanedUp ${String(cleaned.properties.cleanedUp)})` +
                (cleaned.properties.cleanupError ? `: ${cleaned.properties.cleanupError.message}` : ''),
        );
    }
    const left = await remainingFailoverBlobs(ctx, vmId, drillId);
    if (left.length > 0) {
        throw new StepIncomplete(cleanupStep, `failover blobs left after cleanup: ${left.join(', ')}`);
    }
    ctx.say(`${vmId}: test failover cleaned up (drill ${drillId})`);
    if (compareError !== undefined) throw compareError;
    return disks;
}
