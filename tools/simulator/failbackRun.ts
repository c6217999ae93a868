import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import {
    FailbackLogReadyEvent,
    ProviderEvent,
    StartFailbackEvent,
    StartResyncEvent,
} from '../../shared/contracts/messages';
import { validateCommand } from '../../shared/contracts/validate';
import { manifestOfDisk, rootDigestOfDisk, roundOneRanges } from '../../shared/failback/comparison';
import { DataSyncOption } from '../../shared/failback/names';
import { FAILOVER_CONTAINER } from '../../shared/failover/failoverDisks';
import { bufferSource, readHrlData, validateHrl } from '../../shared/hrl';
import { Digester, seedFromHex } from '../../shared/resync/digest';
import { decodeDigestRequest } from '../../shared/resync/manifest';
import { deadline } from '../../shared/storage/deadline';
import { ManagementClient } from './managementClient';
import { ProviderChannel, StepIncomplete } from '../../packages/provider-kit/src';
import { QemuVerdict } from './qemuCompare';
import { SeededRandom } from './random';
import { compareReplicaTwice, downloadReplica } from './replicaCheck';
import { SourceDisk } from './sourceDisk';
import { waitForJob } from './testFailoverDrill';

/**
 * After a committed failover: the VM in Azure writes to its disks (the failover page blobs, which the dry run's
 * VM runs from), then it is failed back (the provider's side played here: manifests of the on-premises disks,
 * the difference logs downloaded and applied, the VM started), every on-premises disk must equal its Azure disk
 * (in-process and qemu-img), and the bytes on the wire are counted against the bytes the Azure VM changed. Then
 * re-protect: the resync brings the replica level with the on-premises disks, counted against the bytes that
 * differ, and the replica is compared. The simulation then runs its cycles as usual.
 */

const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;
/** Writes of the VM in Azure: whole 4 KiB clusters, up to 64 KiB each. */
const CLUSTER = 4096;

export interface FailbackDisk {
    diskId: string;
    source: SourceDisk;
    rawPath: string;
}

export interface FailbackTarget {
    vmId: string;
    drillId: string;
    disks: FailbackDisk[];
    /** Bytes the VM in Azure writes per disk (before the failback; a quarter more while it synchronizes). */
    churn: number;
}

export interface FailbackRunContext {
    api: ManagementClient;
    blob: BlobServiceClient;
    provider: ProviderChannel;
    outDir: string;
    stepTimeoutMs: number;
    random: SeededRandom;
    say: (line: string) => void;
    describe: (vmId: string) => Promise<string>;
    /** The simulation's own answer to StartResync (its resync provider side); the bytes it moved. */
    answerStartResync: (
        event: StartResyncEvent,
    ) => Promise<{ manifestBytes: number; requestBytes: number; logBytes: number }>;
    /** Uploads still in the local host's queue are merged (no-op against a deployed pipeline). */
    settle: () => Promise<void>;
}

export interface DiskCheck {
    diskId: string;
    stage: 'failback' | 'reprotect';
    equal: boolean;
    qemuImg: QemuVerdict;
    problem?: string;
}

export interface FailbackReport {
    vmId: string;
    failbackJobId: string;
    reprotectJobId: string;
    dataSyncOption: DataSyncOption;
    /** Distinct bytes the VM in Azure wrote (4 KiB clusters). */
    azureChangedBytes: number;
    /** Manifests uploaded + digest requests received + difference logs downloaded. */
    failbackWireBytes: number;
    failbackRatio: number;
    /** Bytes of 4 KiB clusters in which the replica differed from the on-premises disks before re-protect. */
    reprotectDifferingBytes: number;
    /** Manifests downloaded + digest requests sent + resync logs uploaded. */
    reprotectWireBytes: number;
    reprotectRatio: number;
    disks: DiskCheck[];
}

/** Cluster indexes written, per disk (what the VM in Azure changed). */
type Written = Map<string, Set<number>>;

async function azureWrites(
    ctx: FailbackRunContext,
    target: FailbackTarget,
    blobs: Record<string, string>,
    bytes: number,
    written: Written,
): Promise<void> {
    for (const disk of target.disks) {
        const page = ctx.blob.getContainerClient(FAILOVER_CONTAINER).getPageBlobClient(blobs[disk.diskId]!);
        const clusters = Math.floor(disk.source.size / CLUSTER);
        const mine = written.get(disk.diskId) ?? new Set<number>();
        written.set(disk.diskId, mine);
        const random = ctx.random.fork(`${target.vmId}/${disk.diskId}/${mine.size}`);
        for (let done = 0; done < bytes;) {
            const count = Math.min(random.int(1, 16), Math.ceil((bytes - done) / CLUSTER));
            const first = random.int(0, clusters - count);
            const data = random.fill(Buffer.alloc(count * CLUSTER));
            await page.uploadPages(data, first * CLUSTER, data.length, { abortSignal: deadline() });
            for (let c = first; c < first + count; c++) mine.add(c);
            done += data.length;
        }
    }
}

/** The provider's side of one failback, answering events as they come, until CompleteFailback is answered. */
function playProvider(
    ctx: FailbackRunContext,
    target: FailbackTarget,
    onSynchronized: () => Promise<void>,
): { wire: { bytes: number }; done: Promise<void> } {
    const wire = { bytes: 0 };
    const queue: ProviderEvent[] = [];
    let wake: (() => void) | undefined;
    ctx.provider.onEvent((e) => {
        if (
            'vmId' in e &&
            e.vmId === target.vmId &&
            ['StartFailback', 'FailbackLogReady', 'CompleteFailback'].includes(e.type)
        ) {
            queue.push(e);
            wake?.();
        }
    });
    const send = async (command: Record<string, unknown>) => {
        validateCommand(command);
        await ctx.provider.send(command as never);
    };
    const done = (async () => {
        const until = Date.now() + ctx.stepTimeoutMs * 4;
        for (;;) {
            const event = queue.shift();
            if (!event) {
                if (Date.now() > until) {
                    throw new StepIncomplete(
                        `failback of ${target.vmId}`,
                        `no failback event came: ${await ctx.describe(target.vmId)}`,
                    );
                }
                await new Promise<void>((r) => {
                    wake = r;
                    setTimeout(r, 500);
                });
                continue;
            }
            if (event.type === 'StartFailback') {
                await answerRound(event);
            } else if (event.type === 'FailbackLogReady') await applyLogs(event);
            else if (event.type === 'CompleteFailback') {
                const e = event;
                await send({
                    type: 'FailbackCompleted',
                    version: 1,
                    vmId: e.vmId,
                    failbackId: e.failbackId,
                    startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
                });
                return;
            }
        }
    })();

    async function answerRound(e: StartFailbackEvent): Promise<void> {
        for (const d of e.disks) {
            const disk = target.disks.find((x) => x.diskId === d.diskId)!;
            const g = { diskSize: d.sizeBytes, leafSize: e.leafSizeBytes, fanout: e.fanout, levels: e.levels };
            const digester = await Digester.create(seedFromHex(e.seed), g);
            const ranges = d.request
                ? decodeDigestRequest(Buffer.from(d.request, 'base64'), g).ranges
                : roundOneRanges(g);
            if (d.request) wire.bytes += d.request.length;
            const manifest = await manifestOfDisk(disk.source, digester, d.level, d.round, ranges);
            const put = await fetch(d.manifestUrl, {
                method: 'PUT',
                headers: { 'x-ms-blob-type': 'BlockBlob', 'content-type': 'application/octet-stream' },
                body: manifest,
                signal: AbortSignal.timeout(60_000),
            });
            if (!put.ok)
                throw new StepIncomplete(`failback of ${target.vmId}`, `manifest upload answered ${put.status}`);
            wire.bytes += manifest.length;
            await send({
                type: 'FailbackManifestUploaded',
                version: 1,
                vmId: e.vmId,
                failbackId: e.failbackId,
                phase: e.phase,
                diskId: d.diskId,
                round: d.round,
            });
        }
    }

    async function applyLogs(e: FailbackLogReadyEvent): Promise<void> {
        // Every log is downloaded and checked before any byte of it is written: a failed download leaves the disk as it was.
        const logs: { disk: FailbackDisk; log: Buffer }[] = [];
        for (const d of e.disks) {
            const got = await fetch(d.logUrl, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
            if (!got.ok) {
                await send({
                    type: 'FailbackFailed',
                    version: 1,
                    vmId: e.vmId,
                    failbackId: e.failbackId,
                    phase: e.phase,
                    code: got.status === 403 ? 'GRANT_EXPIRED' : 'FAILBACK_APPLY_FAILED',
                    message: `GET logUrl of ${d.diskId} answered ${got.status}.`,
                    disksUntouched: true,
                });
                throw new StepIncomplete(`failback of ${target.vmId}`, `log download answered ${got.status}`);
            }
            const log = Buffer.from(await got.arrayBuffer());
            wire.bytes += log.length;
            logs.push({ disk: target.disks.find((x) => x.diskId === d.diskId)!, log });
        }
        for (const { disk, log } of logs) {
            const source = bufferSource(log);
            const index = await validateHrl(source, { diskSize: disk.source.size });
            for await (const piece of readHrlData(source, index))
                await disk.source.write(piece.diskOffset, Buffer.from(piece.data));
        }
        if (e.phase === 'Synchronize') await onSynchronized();
        const disks = [];
        for (const { disk } of logs) {
            const g = {
                diskSize: disk.source.size,
                leafSize: e.leafSizeBytes,
                fanout: e.fanout,
                levels: e.levels,
            };
            disks.push({
                diskId: disk.diskId,
                rootDigest: await rootDigestOfDisk(disk.source, await Digester.create(seedFromHex(e.seed), g)),
            });
        }
        await send({
            type: 'FailbackLogApplied',
            version: 1,
            vmId: e.vmId,
            failbackId: e.failbackId,
            phase: e.phase,
            disks,
        });
    }
    return { wire, done };
}

/** Bytes of the 4 KiB clusters in which two files differ. */
async function differingClusterBytes(a: string, b: string, size: number): Promise<number> {
    const fa = await open(a, 'r');
    const fb = await open(b, 'r');
    try {
        let bytes = 0;
        const chunk = 4 * 1024 * 1024;
        const ba = Buffer.alloc(chunk);
        const bb = Buffer.alloc(chunk);
        for (let at = 0; at < size; at += chunk) {
            const n = Math.min(chunk, size - at);
            await fa.read(ba, 0, n, at);
            await fb.read(bb, 0, n, at);
            for (let c = 0; c < n; c += CLUSTER) {
                const l = Math.min(CLUSTER, n - c);
                if (!ba.subarray(c, c + l).equals(bb.subarray(c, c + l))) bytes += l;
            }
        }
        return bytes;
    } finally {
        await fa.close();
        await fb.close();
    }
}

async function check(rawPath: string, vhdPath: string, diskId: string, stage: DiskCheck['stage']): Promise<DiskCheck> {
    return { diskId, stage, ...(await compareReplicaTwice(rawPath, vhdPath)) };
}

/** Failback, then re-protect, of one failed-over and committed VM. */
export async function runFailbackAndReprotect(
    ctx: FailbackRunContext,
    target: FailbackTarget,
    dataSyncOption: DataSyncOption = 'ForDownTime',
    reprotect = true,
): Promise<FailbackReport> {
    const { vmId } = target;
    const step = `failback of ${vmId}`;
    const drill = (await ctx.api.drills(vmId)).find((d) => d.name === target.drillId);
    if (!drill) throw new StepIncomplete(step, `GET .../drills does not list failover ${target.drillId}`);
    const blobs: Record<string, string> = {};
    for (const disk of target.disks) {
        const name = [...drill.properties.failoverBlobs].reverse().find((b) => b.endsWith(`/${disk.diskId}.vhd`));
        if (!name) throw new StepIncomplete(step, `failover ${target.drillId} lists no blob for ${disk.diskId}`);
        blobs[disk.diskId] = name;
        // What the replica holds: the disk as it was at the failover (re-protect's difference is counted against it).
        await copyFile(disk.rawPath, join(ctx.outDir, vmId, `${disk.diskId}.at-failover.raw`));
    }

    const written: Written = new Map();
    await azureWrites(ctx, target, blobs, target.churn, written);
    ctx.say(`${vmId}: the VM in Azure wrote ${target.churn} bytes per disk; failing back (${dataSyncOption})`);
    const provider = playProvider(ctx, target, async () => {
        // The VM in Azure keeps running while the first difference goes down: what it writes now comes in the last one.
        await azureWrites(ctx, target, blobs, Math.max(CLUSTER, Math.floor(target.churn / 4)), written);
    });
    provider.done.catch(() => undefined);
    const accepted = await ctx.api.failback(vmId, dataSyncOption).catch(async (err: Error) => {
        throw new StepIncomplete(step, `${err.message}; ${await ctx.describe(vmId)}`);
    });
    await Promise.race([provider.done, waitForJob(ctx, accepted.jobId, step)]);
    await provider.done;
    await waitForJob(ctx, accepted.jobId, step);
    const item = await ctx.api.protectedItem(vmId);
    if (item.properties.protectionState !== 'FailedBack') {
        throw new StepIncomplete(step, `the job succeeded but the item is ${item.properties.protectionState}`);
    }
    const azureChangedBytes = [...written.values()].reduce((n, s) => n + s.size * CLUSTER, 0);
    const checks: DiskCheck[] = [];
    for (const disk of target.disks) {
        const vhdPath = join(ctx.outDir, vmId, `${disk.diskId}.failback.vhd`);
        await ctx.blob
            .getContainerClient(FAILOVER_CONTAINER)
            .getBlobClient(blobs[disk.diskId]!)
            .downloadToFile(vhdPath, 0, undefined, { abortSignal: deadline(DOWNLOAD_TIMEOUT_MS) });
        const c = await check(disk.rawPath, vhdPath, disk.diskId, 'failback');
        checks.push(c);
        ctx.say(
            `${vmId}/${disk.diskId}: on premises ${c.equal ? 'equals' : 'DIFFERS from'} the disk in Azure${c.problem ? ` (${c.problem})` : ''}; qemu-img: ${c.qemuImg}`,
        );
    }
    const failbackRatio = provider.wire.bytes / Math.max(1, azureChangedBytes);
    ctx.say(
        `${vmId}: failed back; ${provider.wire.bytes} bytes on the wire for ${azureChangedBytes} bytes changed in Azure (${failbackRatio.toFixed(3)})`,
    );

    const report: FailbackReport = {
        vmId,
        failbackJobId: accepted.jobId,
        reprotectJobId: '',
        dataSyncOption,
        azureChangedBytes,
        failbackWireBytes: provider.wire.bytes,
        failbackRatio: Math.round(failbackRatio * 1000) / 1000,
        reprotectDifferingBytes: 0,
        reprotectWireBytes: 0,
        reprotectRatio: 0,
        disks: checks,
    };
    if (!reprotect) return report;

    // ---- re-protect ----
    const reStep = `re-protect of ${vmId}`;
    let reprotectDifferingBytes = 0;
    for (const disk of target.disks) {
        reprotectDifferingBytes += await differingClusterBytes(
            disk.rawPath,
            join(ctx.outDir, vmId, `${disk.diskId}.at-failover.raw`),
            disk.source.size,
        );
    }
    const startResync = ctx.provider.waitForEvent(
        (e): e is StartResyncEvent =>
            e.type === 'StartResync' && e.vmId === vmId && (e.disks ?? []).some((d) => d.round === 1),
        ctx.stepTimeoutMs,
        `StartResync for the re-protect of ${vmId}`,
        () => ctx.describe(vmId),
    );
    const reprotected = await ctx.api.reprotect(vmId).catch(async (err: Error) => {
        throw new StepIncomplete(reStep, `${err.message}; ${await ctx.describe(vmId)}`);
    });
    const moved = await ctx.answerStartResync(await startResync);
    await ctx.settle();
    await waitForJob(ctx, reprotected.jobId, reStep);
    const reprotectWireBytes = moved.manifestBytes + moved.requestBytes + moved.logBytes;
    for (const disk of target.disks) {
        const vhdPath = join(ctx.outDir, vmId, `${disk.diskId}.reprotect.vhd`);
        await downloadReplica(ctx.blob, vmId, disk.diskId, vhdPath);
        const c = await check(disk.rawPath, vhdPath, disk.diskId, 'reprotect');
        checks.push(c);
        ctx.say(
            `${vmId}/${disk.diskId}: replica ${c.equal ? 'equals' : 'DIFFERS from'} the on-premises disk after re-protect; qemu-img: ${c.qemuImg}`,
        );
    }
    const reprotectRatio = reprotectWireBytes / Math.max(1, reprotectDifferingBytes);
    ctx.say(
        `${vmId}: re-protected; ${reprotectWireBytes} bytes on the wire for ${reprotectDifferingBytes} differing (${reprotectRatio.toFixed(3)})`,
    );
    return {
        ...report,
        reprotectJobId: reprotected.jobId,
        reprotectDifferingBytes,
        reprotectWireBytes,
        reprotectRatio: Math.round(reprotectRatio * 1000) / 1000,
    };
}
