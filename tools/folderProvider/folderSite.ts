import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
    DiskChain,
    DiskChainState,
    ensureErrorType,
    HvrError,
    ImageBarrier,
    ProviderChannel,
    ProviderEvent,
    shipCycle,
    shipInitialReplication,
    SiteCredentials,
    StartReplicationEvent,
    StepIncomplete,
} from '../../packages/provider-kit/src';
import { ManagementClient } from '../simulator/managementClient';
import { FolderVm, readImageFolder } from './imageFolder';

/** Pauses whatever writes a VM's images around its barrier; returns the function that resumes it. */
export type Quiesce = (vmId: string) => Promise<() => Promise<void>>;

export interface FolderProviderOptions {
    /** The folder of raw images: a sub-folder per VM (its images are the disks) or one image per VM. */
    folder: string;
    /** The management API (the local host's or the Function App's) and its function key. */
    apiUrl: string;
    functionKey: string;
    /** The provider bus connection string (`PROVIDER_BUS` as `npm start` prints it, or the namespace's). */
    busConnectionString: string;
    siteId: string;
    /** The replication policy's copy frequency (30, 300 or 900 s). */
    copyFrequencySeconds: 30 | 300 | 900;
    /** Seconds between cycles; default the copy frequency StartReplication carries. Shorter only for tests. */
    intervalSeconds?: number;
    /** Stop after this many delta cycles per VM; default: run until `signal` aborts. */
    cycles?: number;
    /** Where the site key, the chains and the barrier copies are kept; default `{folder}/.hvr-provider`. */
    stateDir?: string;
    /** Keep each cycle's barrier copy as `{stateDir}/barriers/{vmId}/{cycleId}/{diskId}.raw`. */
    keepBarriers?: boolean;
    quiesce?: Quiesce;
    /** Longest wait for a step (an event, Protected); default 10 minutes. */
    stepTimeoutMs?: number;
    signal?: AbortSignal;
    log?: (line: string) => void;
}

export interface CycleReport {
    cycleId: string;
    capturedAt: string;
    /** Data bytes shipped (changed blocks). */
    changedBytes: number;
    logs: number;
    seconds: number;
}

export interface VmReport {
    vmId: string;
    disks: string[];
    cycles: CycleReport[];
    stopped?: string;
}

export interface FolderProviderResult {
    siteId: string;
    vms: VmReport[];
}

interface VmState {
    vmId: string;
    /** Delta cycles shipped so far (the next is cycle-{cycle + 1}). */
    cycle: number;
    initialShipped: boolean;
    disks: DiskChainState[];
}

const POLICY_PREFIX = 'hvr-provider-';
const PROVIDER_VERSION = '0.1.0';

async function readJson<T>(path: string): Promise<T | undefined> {
    try {
        return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new HvrError('VALIDATION_FAILED', `${path}: ${ensureErrorType(err).message}`);
    }
}

/** Written whole or not at all (a crash mid-write leaves the previous state). */
async function writeJson(path: string, value: unknown): Promise<void> {
    await writeFile(`${path}.tmp`, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
    await rename(`${path}.tmp`, path);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((done) => {
        if (signal?.aborted) return done();
        const timer = setTimeout(finish, ms);
        function finish(): void {
            clearTimeout(timer);
            signal?.removeEventListener('abort', finish);
            done();
        }
        signal?.addEventListener('abort', finish, { once: true });
    });
}

/**
 * `hvr provider`: protects a folder of raw disk images as a site, in real time, with the provider kit.
 * Registers the site (its key kept in the state folder), a policy, protects one VM per image set, answers
 * StartReplication with initial replication from a barrier copy, then every interval takes a barrier of each
 * VM's images and ships the changed blocks as one cycle: a recovery point equals the images at its barrier.
 */
export async function runFolderProvider(options: FolderProviderOptions): Promise<FolderProviderResult> {
    const say = options.log ?? (() => undefined);
    const stepTimeoutMs = options.stepTimeoutMs ?? 10 * 60_000;
    const folder = resolve(options.folder);
    const stateDir = resolve(options.stateDir ?? join(folder, '.hvr-provider'));
    await mkdir(join(stateDir, 'vms'), { recursive: true });
    const vms = await readImageFolder(folder);
    const api = new ManagementClient(options.apiUrl, options.functionKey);

    const site = await siteKey(api, options.siteId, stateDir, say);
    const policyName = `${POLICY_PREFIX}${options.copyFrequencySeconds}s`;
    await api.putPolicy(policyName, {
        copyFrequencySeconds: options.copyFrequencySeconds,
        recoveryPointRetentionHours: 24,
        appConsistentSnapshotFrequencyHours: 0,
        initialReplicationStart: 'Immediately',
        description: 'hvr provider',
    });
    const channel = new ProviderChannel(site, options.busConnectionString, { log: (l) => say(`channel: ${l}`) });
    channel.start();
    const stopped = new Map<string, string>();
    channel.onEvent((event: ProviderEvent) => {
        if (event.type === 'StopReplication') {
            stopped.set(event.vmId, event.reason);
            say(`${event.vmId}: StopReplication (${event.reason}); no more cycles`);
        } else if (event.type === 'StartResync') {
            say(`${event.vmId}: StartResync ${event.resyncId} is not answered by hvr provider (${event.reason})`);
        }
    });
    const providerId = `hvr-provider-${options.siteId}`.slice(0, 64).replace(/[.]+$/, '');
    const heartbeat = setInterval(() => {
        channel
            .send({
                type: 'Heartbeat',
                version: 1,
                providerId,
                vms: vms.map((vm) => ({
                    vmId: vm.vmId,
                    pendingLogBytes: Object.fromEntries(vm.disks.map((d) => [d.diskId, 0])),
                })),
            })
            .catch((err: unknown) => say(`heartbeat not sent: ${ensureErrorType(err).message}`));
    }, 30_000);
    try {
        await channel.send({
            type: 'Register',
            version: 1,
            providerId,
            kind: 'HyperVHost',
            hostName: 'hvr-provider',
            providerVersion: PROVIDER_VERSION,
        });
        say(`site ${site.siteId} (key ${site.keyId}), policy ${policyName}, ${vms.length} VM(s)`);
        const reports = await Promise.all(
            vms.map((vm) =>
                protectVm(vm, { ...options, stepTimeoutMs, stateDir, policyName, api, channel, stopped, say }),
            ),
        );
        return { siteId: site.siteId, vms: reports };
    } finally {
        clearInterval(heartbeat);
        await channel.stop().catch(() => undefined);
    }
}

/** The site's key: kept from its registration (the API returns it only then). */
async function siteKey(
    api: ManagementClient,
    siteId: string,
    stateDir: string,
    say: (line: string) => void,
): Promise<SiteCredentials> {
    const path = join(stateDir, 'site.json');
    const kept = await readJson<SiteCredentials>(path);
    if (kept) {
        if (kept.siteId !== siteId) {
            throw new HvrError('CONFLICT', `${path} is the key of site ${kept.siteId}, not ${siteId}.`);
        }
        return kept;
    }
    const registered = await api.registerSite({
        siteId,
        name: `hvr provider ${siteId}`,
        kind: 'HyperVSite',
        timeZone: 'UTC',
    });
    const issued = registered.siteKey as { keyId?: unknown; key?: unknown } | undefined;
    if (typeof issued?.keyId !== 'string' || typeof issued.key !== 'string') {
        throw new HvrError(
            'CONFLICT',
            `site ${siteId} was registered before and the API returns its key only at the first registration; ` +
                `${path} does not have it. Use a new --site, or the state folder of the run that registered it.`,
        );
    }
    const credentials = { siteId, keyId: issued.keyId, key: issued.key };
    await writeJson(path, credentials);
    say(`site ${siteId} registered; its key is kept in ${path}`);
    return credentials;
}

interface VmContext extends FolderProviderOptions {
    stepTimeoutMs: number;
    stateDir: string;
    policyName: string;
    api: ManagementClient;
    channel: ProviderChannel;
    stopped: Map<string, string>;
    say: (line: string) => void;
}

async function waitForProtected(ctx: VmContext, vmId: string): Promise<void> {
    const until = Date.now() + ctx.stepTimeoutMs;
    let last = '';
    while (Date.now() < until && !ctx.signal?.aborted) {
        const item = await ctx.api.protectedItem(vmId).catch(() => undefined);
        const state = item?.properties.protectionState ?? '?';
        if (state === 'Protected') return;
        if (state === 'InitialReplicationFailed' || state === 'EnablingFailed') {
            throw new StepIncomplete(`protect ${vmId}`, `${vmId} is ${state}`);
        }
        last = `${state}, health ${item?.properties.replicationHealth ?? '?'}${(item?.properties.healthReasons ?? []).map((r) => `; ${r.code}: ${r.message ?? ''}`).join('')}`;
        await sleep(1000, ctx.signal);
    }
    throw new StepIncomplete(`protect ${vmId}`, `not Protected after ${ctx.stepTimeoutMs / 1000} s: ${last}`);
}

/**
 * Waits (at most the step timeout) until the previous cycle is a recovery point. The merge records a point
 * when every disk of the VM has applied that cycle's log at the same moment; a disk that applies the next
 * cycle before the others caught up skips the point. So a cycle starts only once the last one is a point, as
 * long as the merge keeps up (at a 30 s copy frequency it is seconds behind); past the timeout it goes on.
 */
async function waitForPoint(ctx: VmContext, vmId: string, cycleId: string): Promise<void> {
    const until = Date.now() + ctx.stepTimeoutMs;
    while (Date.now() < until && !ctx.signal?.aborted) {
        const points = await ctx.api.recoveryPoints(vmId).catch(() => []);
        if (points.some((p) => p.properties.cycleId === cycleId)) return;
        await sleep(250, ctx.signal);
    }
    if (ctx.signal?.aborted) return;
    ctx.say(`${vmId}: ${cycleId} is not a recovery point after ${ctx.stepTimeoutMs / 1000} s; the next cycle goes on`);
}

async function protectVm(vm: FolderVm, ctx: VmContext): Promise<VmReport> {
    const statePath = join(ctx.stateDir, 'vms', `${vm.vmId}.json`);
    const copies = join(ctx.stateDir, 'copies', vm.vmId);
    await mkdir(copies, { recursive: true });
    const report: VmReport = { vmId: vm.vmId, disks: vm.disks.map((d) => d.diskId), cycles: [] };
    let state = await readJson<VmState>(statePath);
    const resume = state?.initialShipped === true;
    const barriers = new Map<string, ImageBarrier>();
    try {
        for (const disk of vm.disks) {
            barriers.set(
                disk.diskId,
                await ImageBarrier.open(disk.path, join(copies, `${disk.diskId}.copy`), { resume }),
            );
        }
        const chains = new Map(
            vm.disks.map((d) => {
                const kept = resume ? state!.disks.find((s) => s.diskId === d.diskId) : undefined;
                return [d.diskId, new DiskChain(d.diskId, kept ? { resume: kept } : {})];
            }),
        );
        let copyFrequency: number = ctx.copyFrequencySeconds;
        const saveState = async (next: VmState) => {
            state = next;
            await writeJson(statePath, next);
        };
        const barrier = async (cycleId: string) => {
            const resumeWriter = ctx.quiesce ? await ctx.quiesce(vm.vmId) : undefined;
            const capturedAt = new Date();
            const ranges = new Map<string, { offset: number; length: number }[]>();
            try {
                for (const disk of vm.disks) ranges.set(disk.diskId, await barriers.get(disk.diskId)!.take());
            } finally {
                await resumeWriter?.();
            }
            if (ctx.keepBarriers) {
                const dir = join(ctx.stateDir, 'barriers', vm.vmId, cycleId);
                await mkdir(dir, { recursive: true });
                for (const disk of vm.disks) await barriers.get(disk.diskId)!.keepAs(join(dir, `${disk.diskId}.raw`));
            }
            return {
                capturedAt,
                disks: vm.disks.map((d) => ({
                    chain: chains.get(d.diskId)!,
                    source: barriers.get(d.diskId)!,
                    ranges: ranges.get(d.diskId)!,
                })),
            };
        };

        if (!resume) {
            const started = ctx.channel.waitForEvent(
                (e): e is StartReplicationEvent => e.type === 'StartReplication' && e.vmId === vm.vmId,
                ctx.stepTimeoutMs,
                `StartReplication for ${vm.vmId}`,
            );
            started.catch(() => undefined);
            const { jobId } = await ctx.api.enableProtection(vm.vmId, {
                siteId: ctx.siteId,
                policyName: ctx.policyName,
                vm: {
                    name: vm.vmId,
                    generation: 2,
                    disks: vm.disks.map((d) => ({
                        diskId: d.diskId,
                        sizeBytes: d.sizeBytes,
                        logicalSectorBytes: 512,
                        isOsDisk: d.isOsDisk,
                    })),
                },
            });
            ctx.say(`${vm.vmId}: enable protection accepted (job ${jobId}); ${vm.disks.length} disk(s)`);
            const event = await started;
            copyFrequency = event.copyFrequencySeconds;
            for (const d of vm.disks) {
                if (!event.disks.some((e) => e.diskId === d.diskId && e.sizeBytes === d.sizeBytes)) {
                    throw new StepIncomplete(
                        `StartReplication for ${vm.vmId}`,
                        `it does not list disk ${d.diskId} of ${d.sizeBytes} bytes`,
                    );
                }
            }
            const t0 = Date.now();
            const initial = await barrier('initial');
            const logs = await shipInitialReplication(
                {
                    channel: ctx.channel,
                    vmId: vm.vmId,
                    grantTimeoutMs: ctx.stepTimeoutMs,
                    capturedAt: initial.capturedAt,
                },
                initial.disks,
            );
            await saveState({
                vmId: vm.vmId,
                cycle: 0,
                initialShipped: true,
                disks: [...chains.values()].map((c) => c.snapshot()),
            });
            const bytes = initial.disks.reduce((n, d) => n + d.ranges.reduce((m, r) => m + r.length, 0), 0);
            ctx.say(
                `${vm.vmId}: initial replication shipped: ${logs.length} log(s), ${bytes} bytes of data, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
            );
            await waitForProtected(ctx, vm.vmId);
            ctx.say(`${vm.vmId}: Protected`);
        } else {
            ctx.say(`${vm.vmId}: resuming after cycle ${state!.cycle} (${statePath})`);
        }

        const intervalMs = (ctx.intervalSeconds ?? copyFrequency) * 1000;
        let next = Date.now() + intervalMs;
        const last = ctx.cycles === undefined ? Infinity : state!.cycle + ctx.cycles;
        while (state!.cycle < last && !ctx.signal?.aborted) {
            await sleep(Math.max(0, next - Date.now()), ctx.signal);
            if (ctx.signal?.aborted) break;
            const reason = ctx.stopped.get(vm.vmId);
            if (reason) {
                report.stopped = reason;
                break;
            }
            if (state!.cycle > 0) await waitForPoint(ctx, vm.vmId, `cycle-${state!.cycle}`);
            next += intervalMs;
            const t0 = Date.now();
            const cycleId = `cycle-${state!.cycle + 1}`;
            const taken = await barrier(cycleId);
            const logs = await shipCycle(
                {
                    channel: ctx.channel,
                    vmId: vm.vmId,
                    grantTimeoutMs: ctx.stepTimeoutMs,
                    capturedAt: taken.capturedAt,
                },
                cycleId,
                taken.disks,
            );
            await saveState({
                ...state!,
                cycle: state!.cycle + 1,
                disks: [...chains.values()].map((c) => c.snapshot()),
            });
            const changedBytes = taken.disks.reduce((n, d) => n + d.ranges.reduce((m, r) => m + r.length, 0), 0);
            const seconds = (Date.now() - t0) / 1000;
            report.cycles.push({
                cycleId,
                capturedAt: taken.capturedAt.toISOString(),
                changedBytes,
                logs: logs.length,
                seconds,
            });
            ctx.say(
                `${vm.vmId}: ${cycleId} shipped (${changedBytes} bytes changed, ${logs.length} log(s), ${seconds.toFixed(1)} s)`,
            );
            if (Date.now() > next) {
                ctx.say(`${vm.vmId}: ${cycleId} took longer than the interval; the next cycle starts now`);
                next = Date.now();
            }
        }
        return report;
    } finally {
        for (const b of barriers.values()) await b.close().catch(() => undefined);
    }
}
