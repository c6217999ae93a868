import { INITIAL_REPLICATION_CYCLE_ID } from '../../shared/contracts/ids';
import { createWriteStream, WriteStream } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
    CycleLog,
    PROVIDER_COMMANDS_QUEUE,
    ProviderCommand,
    ProviderEvent,
    StartReplicationEvent,
    StartResyncEvent,
    UploadGrantItem,
} from '../../shared/contracts/messages';
import { ProviderSitesTable } from '../../shared/contracts/providerSites';
import { validateCommand } from '../../shared/contracts/validate';
import { HrlWriteEntry } from '../../shared/hrl';
import { encodeDigestRequest } from '../../shared/resync/manifest';
import { ProviderComparison } from '../../shared/resync/provider';
import { ensureErrorType, HvrError } from '../../shared/errors';
import { CHAIN_GAP_MIN_SECONDS_SETTING, chainGapTimeoutSeconds } from '../../shared/replica/chainGap';
import { REPLICA_LOGS_CONTAINER } from '../../shared/replica/logBlob';
import { deadline } from '../../shared/storage/deadline';
import { connectionFromString } from '../../shared/storage/connections';
import { formatByteSize } from '../../shared/byteSize';
import { type DurableEngineName } from '../../packages/functions-local/src';
import { LocalHost, startLocalHost } from '../platform';
import { ManagementClient, ProtectedItemView } from './managementClient';
import {
    logMetadata,
    ProviderChannel,
    shipInitialReplication,
    SiteCredentials,
    StepIncomplete,
    uploadLog,
} from '../../packages/provider-kit/src';
import { SeededRandom } from './random';
import { compareReplicaTwice, downloadReplica, ReplicaComparison } from './replicaCheck';
import { FailoverMode, FailoverReport, PlannedFailoverGuest, runFailover } from './failoverRun';
import { FailoverDiskComparison, runTestFailoverDrill } from './testFailoverDrill';
import { FailbackReport, runFailbackAndReprotect } from './failbackRun';
import { DataSyncOption } from '../../shared/failback/names';
import { RecoveryPlanReport, runRecoveryPlan } from './recoveryPlanRun';
import { GuestWrite } from './workload';
import { BuiltLog, SimulatedDisk } from './simulatedDisk';
import { SourceDisk } from './sourceDisk';
import { DiskWorkload } from './workload';
import { attackCycleOf, checkFlags, encryptInPlace, EncryptReport, qemuVerdicts } from './encryptAttack';

export type Fault = 'duplicate' | 'reorder' | 'drop' | 'encrypt';
export const FAULTS: readonly Fault[] = ['duplicate', 'reorder', 'drop', 'encrypt'];

/** Where the pipeline runs when the simulator does not start one. */
export interface ExternalPipeline {
    apiUrl: string;
    functionKey: string;
    /** The app's storage (AzureWebJobsStorage = REPLICA_STORAGE locally): replicas to download. */
    storageConnectionString: string;
    /** The provider bus: a connection string to the namespace (or the local host's broker) with the channel. */
    providerBusConnectionString: string;
}

export interface SimulationOptions {
    /** Sources (`{vmId}/{diskId}.raw`), downloaded replicas (`.vhd`) and `host.log` go here. */
    outDir: string;
    seed: number;
    vms: number;
    disks: number;
    diskSize: number;
    cycles: number;
    /** Bytes written per disk per cycle. */
    churn: number;
    faults: ReadonlySet<Fault>;
    /** Use this pipeline; otherwise the simulator starts Azurite and the local host. */
    pipeline?: ExternalPipeline;
    /** Folder of the app (package.json, host.json) for the local host. Default: the repository root. */
    appRoot?: string;
    /** Modules to load instead of package.json `main` (tests load the TypeScript sources). */
    modules?: string[];
    /**
     * After the cycles (and a resync): a test failover of each VM to its latest point on the host's dry-run
     * infrastructure, its disks compared with the sources, then its cleanup.
     */
    testFailover?: boolean;
    /**
     * After the cycles: a production failover of each VM, then commit. `planned`: the guests keep writing until
     * the provider is asked to shut them down, the final cycle goes up, each failover disk must equal the source
     * at shutdown and the RPO must be 0. `unplanned`: the latest point.
     */
    failover?: FailoverMode;
    /** With a failover: before commit, change to the point of the second-to-last cycle and check its disks. */
    changePoint?: boolean;
    /**
     * With a failover: the VM in Azure writes to its disks, then it is failed back (failbackRun.ts); with
     * `reprotect` also re-protected, and the cycles run again after it, checked as usual.
     */
    failback?: { dataSyncOption: DataSyncOption; reprotect: boolean };
    /**
     * After the cycles: the VMs in a recovery plan of up to three groups with a manual step, test-failed over and
     * cleaned up as a plan (tools/simulator/recoveryPlanRun.ts).
     */
    recoveryPlan?: boolean;
    /** Longest wait for any one step (an event, a state, a recovery point). Default 60 s. */
    stepTimeoutMs?: number;
    /**
     * Milliseconds between two API polls of one VM while it waits for a state or a recovery point. Default 250.
     * A fleet benchmark raises it with the fleet so that the simulator's own reads stay a fixed share of the work.
     */
    pollIntervalMs?: number;
    /**
     * Every VM waits at the end of initial replication until all are Protected, and `onPhase` is called when the
     * fleet enters each phase, so a benchmark can measure initial replication and the cycles apart.
     */
    onPhase?: (phase: SimulationPhase) => void;
    /** The Durable engine of the local host (ignored with `pipeline`); default HVR_DURABLE, else embedded. */
    durable?: DurableEngineName;
    /**
     * The local host's storage instead of an Azurite of its own (ignored with `pipeline`): `AzureWebJobsStorage`
     * (the host and the Durable engine) and `REPLICA_STORAGE` (the app's replicas, logs, tables) may be two
     * connection strings to one Azurite, so a counting proxy can tell their traffic apart (bench/cost).
     */
    /**
     * Azurite's data in this folder instead of in memory. In memory, Azurite holds every page blob, snapshot
     * and log in its own process, and a 200-VM fleet stalled it (every storage call hung for the 60 s of its
     * timeout, 10 minutes into the cycles).
     */
    azuriteLocation?: string;
    hostStorage?: { azureWebJobsStorage: string; replicaStorage: string };
    /** Progress lines (stderr for the CLI). */
    progress?: (line: string) => void;
    /**
     * Called with the local host after the run, before it stops (`--serve` waits there until Ctrl-C). The
     * provider keeps sending its heartbeat every 5 s until it returns.
     */
    beforeStop?: (host: LocalHost) => Promise<void>;
}

/** `initialReplication`: the host is up and VMs are being enabled; `cycles`: every VM is Protected; `done`. */
export type SimulationPhase = 'initialReplication' | 'cycles' | 'done';

/** Waits until `parties` have arrived; a party that fails breaks it, so nobody waits for a VM that stopped. */
class PhaseBarrier {
    private arrived = 0;
    private broken: Error | undefined;
    private readonly waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
    constructor(
        private readonly parties: number,
        private readonly onOpen: () => void,
    ) {}

    arrive(): Promise<void> {
        if (this.broken) return Promise.reject(this.broken);
        const wait = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
        if (++this.arrived === this.parties) {
            this.onOpen();
            for (const w of this.waiting.splice(0)) w.resolve();
        }
        return wait;
    }

    break(err: unknown): void {
        this.broken ??= ensureErrorType(err);
        for (const w of this.waiting.splice(0)) w.reject(this.broken);
    }
}

export interface VmSummary {
    vmId: string;
    state: string;
    health: string;
    recoveryPoints: number;
    jobs: { name: string; state: string }[];
}

export interface SimulationResult {
    vms: VmSummary[];
    totals: { logs: number; bytes: number; seconds: number };
    replicas: ReplicaComparison[];
    /** With `testFailover`: each VM's failover disks against its sources (`{diskId}.failover.vhd`). */
    failoverDisks: FailoverDiskComparison[];
    /** With `failover`: each VM's failover (point, RPO, change of point, commit). */
    failovers: FailoverReport[];
    /** With `failback`: each VM's failback and re-protect (bytes on the wire, disks at each stage). */
    failbacks: FailbackReport[];
    /** With `recoveryPlan`: the plan's groups, jobs and order check (its disks are in `failoverDisks`). */
    recoveryPlan?: RecoveryPlanReport;
    /** With the `encrypt` fault: the flagged points, the last clean point and its drill's disks. */
    encrypt?: EncryptReport;
    /** Set when a step did not complete: which, and why. */
    failure?: { step: string; message: string };
    /** Things the pipeline did not do itself that the simulator stood in for (named, never silent). */
    warnings: string[];
    /** Every replica (and with `testFailover` every failover disk) equals its source and no step failed. */
    ok: boolean;
}

const POLICY_NAME = 'simulated-30s';
const SIMULATED_COPY_FREQUENCY_SECONDS = 30;
const POLL_MS = 250;
/**
 * The lower bound of a chain gap's wait on the simulator's host (the merge's MERGE_GAP_MIN_SECONDS): its cycles
 * follow each other in seconds, so "a few cycles reported" comes long before the production bound of 2 minutes.
 */
const LOCAL_GAP_MIN_SECONDS = 2;
/** How often the merge's gap sweep runs (functions/mergeReplicaLog.ts, every 30 s). */
const GAP_SWEEP_INTERVAL_SECONDS = 30;

interface SimVm {
    vmId: string;
    name: string;
    disks: SimulatedDisk[];
    /** A log held back by the `reorder` fault, uploaded after the next one. */
    held: Map<string, { cycle: number; log: BuiltLog; grant: UploadGrantItem; metadata: Record<string, string> }>;
    droppedAt?: { diskId: string; cycle: number; sequence: number };
    /** The cycle of the last recovery point the simulator waited for: what a `Latest` failover restores. */
    lastCycleId?: string;
    /** With `changePoint`: the second-to-last cycle and copies of the sources as they were at its end. */
    olderPoint?: { cycleId: string; rawPaths: Record<string, string> };
    /** With the `encrypt` fault: the cycle whose writes encrypt the disks, and the sources just before it. */
    encryptAt?: number;
    cleanPoint?: { cycleId: string; rawPaths: Record<string, string> };
    /** How long its last delta cycle took from shipped to seen as a recovery point: when to poll for the next. */
    applyMs?: number;
}

/** Counters for the summary. */
interface Totals {
    logs: number;
    bytes: number;
    duplicates: number;
    reordered: number;
    dropped: number;
}

/**
 * The longest wait for one step. A 1 MiB log took 6–9 s to merge at load 28 on 2 cores and a cycle waited behind
 * another VM's resynchronization; 60 s failed one run of `--faults drop` in nine there.
 */
export const DEFAULT_STEP_TIMEOUT_SECONDS = 180;

/**
 * Runs a simulated Hyper-V site against the pipeline end to end: registration, policy, enable protection
 * through the API, initial replication and delta cycles as MS-HRL logs uploaded through grants, then the
 * replicas are downloaded and compared with the sources. Never throws for a pipeline problem: the result
 * names the step that did not complete.
 */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
    const started = Date.now();
    const progress = options.progress ?? (() => undefined);
    // host.log's lines carry the same clock as the progress lines, so the two can be read side by side.
    const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1)}s]`;
    const say = (line: string) => progress(`[sim ${stamp().slice(1)} ${line}`);
    const stepTimeoutMs = options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_SECONDS * 1000;
    const outDir = resolve(options.outDir);
    await mkdir(outDir, { recursive: true });
    const totals: Totals = { logs: 0, bytes: 0, duplicates: 0, reordered: 0, dropped: 0 };
    const warnings: string[] = [];
    const random = new SeededRandom(options.seed);

    let host: LocalHost | undefined;
    let hostLog: WriteStream | undefined;
    let channel: ProviderChannel | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    const vms: SimVm[] = [];
    let api: ManagementClient | undefined;
    let failure: { step: string; message: string } | undefined;
    let replicas: ReplicaComparison[] = [];
    let failoverDisks: FailoverDiskComparison[] = [];
    let encrypt: EncryptReport | undefined;
    const failovers: FailoverReport[] = [];
    const failbacks: FailbackReport[] = [];
    let recoveryPlan: RecoveryPlanReport | undefined;
    let storageCs = '';
    let busCs = '';

    try {
        // ---- the pipeline ----
        if (options.pipeline) {
            api = new ManagementClient(options.pipeline.apiUrl, options.pipeline.functionKey);
            storageCs = options.pipeline.storageConnectionString;
            busCs = options.pipeline.providerBusConnectionString;
            say(`using the pipeline at ${options.pipeline.apiUrl}`);
        } else {
            hostLog = createWriteStream(join(outDir, 'host.log'));
            const log = hostLog;
            say('starting Azurite and the local host (its log: host.log)');
            host = await startLocalHost({
                appRoot:
                    options.appRoot ?? resolve(__dirname, '..', '..', ...(__dirname.includes('/dist/') ? ['..'] : [])),
                modules: options.modules,
                port: 0,
                ...(options.azuriteLocation ? { azurite: { location: options.azuriteLocation } } : {}),
                ...(options.hostStorage ? { storageConnectionString: options.hostStorage.azureWebJobsStorage } : {}),
                settings: {
                    ...(options.hostStorage
                        ? {
                              AzureWebJobsStorage: options.hostStorage.azureWebJobsStorage,
                              REPLICA_STORAGE: options.hostStorage.replicaStorage,
                          }
                        : {}),
                    PROVIDER_BUS: '',
                    [CHAIN_GAP_MIN_SECONDS_SETTING]: String(LOCAL_GAP_MIN_SECONDS),
                    // Drills record the Azure resources they would create; never ARM from the simulator's host.
                    FAILOVER_INFRASTRUCTURE: 'dryrun',
                },
                durable: options.durable,
                blobScanIntervalMs: 200,
                serviceBus: { pollIntervalMs: 100, receiveWaitMs: 500, siteScanIntervalMs: 250 },
                log: (line) => log.write(`${stamp()} ${line}\n`),
            });
            api = new ManagementClient(host.apiUrl, host.functionKey);
            storageCs = host.storageConnectionString;
            busCs = host.settings.PROVIDER_BUS!;
            say(`local host at ${host.apiUrl}`);
        }
        // What infra/ provisions in Azure: the container providers upload into (grants cannot create it).
        await connectionFromString(storageCs)
            .blob.getContainerClient(REPLICA_LOGS_CONTAINER)
            .createIfNotExists({ abortSignal: deadline() });
        // A run against a shared pipeline must not collide with an earlier one; a fresh Azurite needs no suffix.
        const runTag = options.pipeline ? `-${random.fork('run').uint32().toString(16).slice(0, 6)}` : '';
        const siteId = `sim-site${runTag}`;

        // ---- the site and its policy ----
        const registered = await step('register the site', () =>
            api!.registerSite({ siteId, name: 'Simulated Hyper-V site', kind: 'HyperVSite', timeZone: 'UTC' }),
        );
        const credentials = await siteCredentials(siteId, registered, storageCs, warnings, say);
        await step('create the replication policy', () => api!.putPolicy(POLICY_NAME, simulatedPolicy(new Date())));
        say(`site ${siteId} registered (key ${credentials.keyId}); policy ${POLICY_NAME}: copy frequency 30 s`);

        channel = new ProviderChannel(credentials, busCs, {
            log: (line) => hostLog?.write(`${stamp()} [provider] ${line}\n`),
        });
        channel.start();
        const provider = channel;
        await provider.send({
            type: 'Register',
            version: 1,
            providerId: 'sim-provider-1',
            kind: 'HyperVHost',
            hostName: 'sim-hyperv-01',
            providerVersion: '1.0.0',
        });

        // ---- VMs and their disks ----
        for (let v = 1; v <= options.vms; v++) {
            const vmId = `vm-${v}${runTag}`;
            await mkdir(join(outDir, vmId), { recursive: true });
            const vmRandom = random.fork(`vm-${v}`);
            const disks: SimulatedDisk[] = [];
            for (let d = 0; d < options.disks; d++) {
                const diskId = d === 0 ? 'os' : `data${d}`;
                const source = await SourceDisk.create(join(outDir, vmId, `${diskId}.raw`), options.diskSize);
                const diskRandom = vmRandom.fork(diskId);
                const disk = new SimulatedDisk(
                    diskId,
                    d === 0,
                    source,
                    new DiskWorkload(diskRandom.fork('workload'), options.diskSize),
                    diskRandom,
                );
                await disk.fillInitialContent();
                disks.push(disk);
            }
            vms.push({ vmId, name: `sim-vm-${v}`, disks, held: new Map() });
        }
        planFaults(vms, options, random.fork('faults'));
        await assignVms(vms, siteId, registered, storageCs, warnings);

        heartbeat = setInterval(() => {
            provider
                .send({
                    type: 'Heartbeat',
                    version: 1,
                    providerId: 'sim-provider-1',
                    vms: vms.map((vm) => ({ vmId: vm.vmId, pendingLogBytes: pendingBytes(vm) })),
                })
                .catch((err: unknown) => say(`heartbeat not sent: ${ensureErrorType(err).message}`));
        }, 5_000);

        if (
            host &&
            !host.functions.some((f) => f.trigger === 'serviceBus' && f.detail.includes(PROVIDER_COMMANDS_QUEUE))
        ) {
            warnings.push(
                `no function of the app reads queue "${PROVIDER_COMMANDS_QUEUE}" (functions/providerCommands.ts): ` +
                    'provider commands will not be processed',
            );
            say(`warning: ${warnings[warnings.length - 1]}`);
        }

        // ---- enable protection, initial replication, cycles: every VM at once ----
        const onPhase = options.onPhase;
        const protectedBarrier = onPhase ? new PhaseBarrier(vms.length, () => onPhase('cycles')) : undefined;
        const ctx: VmRunContext = {
            api,
            provider,
            options,
            totals,
            say,
            stepTimeoutMs,
            pollMs: options.pollIntervalMs ?? POLL_MS,
            host,
            protectedBarrier,
        };
        onPhase?.('initialReplication');
        const outcomes = await Promise.allSettled(
            vms.map((vm) =>
                replicateVm(vm, ctx).catch((err: unknown) => {
                    protectedBarrier?.break(err);
                    throw err;
                }),
            ),
        );
        onPhase?.('done');
        const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
        if (failed) throw failed.reason;

        // ---- production failover (before the replica check: a planned one ships the final cycle) ----
        if (options.failover) {
            const failoverApi = api;
            await step('map the site network for failover', () =>
                failoverApi.putNetworkMapping(siteId, SIMULATED_NETWORK, {
                    recoveryVnetId: process.env.HVR_RECOVERY_VNET_ID ?? DRY_RUN_RECOVERY_VNET,
                    recoverySubnets: ['default'],
                }),
            );
            const blob = connectionFromString(storageCs).blob;
            const mode = options.failover;
            const runs = await Promise.allSettled(
                vms.map((vm) =>
                    runFailover(
                        {
                            api: failoverApi,
                            blob,
                            outDir,
                            stepTimeoutMs,
                            say,
                            describe: (vmId) => describeVm(failoverApi, vmId),
                            provider,
                        },
                        {
                            vmId: vm.vmId,
                            diskIds: vm.disks.map((d) => d.diskId),
                            lastCycleId: vm.lastCycleId ?? cycleIdOf(options.cycles),
                            ...(mode === 'planned' ? { guest: plannedGuest(vm, ctx) } : {}),
                            ...(vm.olderPoint ? { olderPoint: vm.olderPoint } : {}),
                        },
                        mode,
                    ),
                ),
            );
            for (const r of runs) if (r.status === 'fulfilled') failovers.push(r.value);
            failoverDisks = failovers.flatMap((f) => f.disks);
            const failedRun = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
            if (failedRun) throw failedRun.reason;
            if (options.failback) failbacks.push(...(await failBackAll(vms, failovers, ctx, blob, outDir, random)));
        }

        // ---- the replicas ----
        say('downloading the replicas and comparing them with the sources');
        replicas = await compareAll(vms, outDir, storageCs);
        for (const r of replicas) {
            say(
                `${r.vmId}/${r.diskId}: ${r.equal ? 'replica equals source' : `DIFFERS: ${r.problem}`}; qemu-img: ${r.qemuImg ?? 'not run'}`,
            );
        }

        // ---- the test failover drills ----
        if (options.testFailover) {
            const drillApi = api;
            const blob = connectionFromString(storageCs).blob;
            const drills = await Promise.allSettled(
                vms.map((vm) =>
                    runTestFailoverDrill(
                        {
                            api: drillApi,
                            blob,
                            outDir,
                            stepTimeoutMs,
                            say,
                            describe: (vmId) => describeVm(drillApi, vmId),
                        },
                        vm.cleanPoint
                            ? {
                                  vmId: vm.vmId,
                                  diskIds: vm.disks.map((d) => d.diskId),
                                  lastCycleId: vm.cleanPoint.cycleId,
                                  recoveryPoint: { type: 'LatestClean' },
                                  rawPaths: vm.cleanPoint.rawPaths,
                              }
                            : {
                                  vmId: vm.vmId,
                                  diskIds: vm.disks.map((d) => d.diskId),
                                  lastCycleId: vm.lastCycleId ?? cycleIdOf(options.cycles),
                              },
                    ),
                ),
            );
            failoverDisks = drills.flatMap((d) => (d.status === 'fulfilled' ? d.value : []));
            const attacked = vms.find((vm) => vm.cleanPoint);
            if (attacked) {
                const disks = failoverDisks.filter((d) => d.vmId === attacked.vmId);
                encrypt = await encryptVerdict(drillApi, vms, attacked, disks);
            }
            const failedDrill = drills.find((d): d is PromiseRejectedResult => d.status === 'rejected');
            if (failedDrill) throw failedDrill.reason;
        }

        // ---- the recovery plan ----
        if (options.recoveryPlan) {
            const planApi = api;
            recoveryPlan = await runRecoveryPlan(
                {
                    api: planApi,
                    apiUrl: planApi.apiUrl,
                    functionKey: planApi.functionKey,
                    blob: connectionFromString(storageCs).blob,
                    outDir,
                    stepTimeoutMs,
                    say,
                    describe: (vmId) => describeVm(planApi, vmId),
                },
                vms.map((vm) => ({
                    vmId: vm.vmId,
                    diskIds: vm.disks.map((d) => d.diskId),
                    lastCycleId: vm.lastCycleId ?? cycleIdOf(options.cycles),
                })),
            );
            failoverDisks = recoveryPlan.disks;
        }
        const attacked = vms.find((vm) => vm.cleanPoint);
        if (attacked && api) {
            encrypt ??= await encryptVerdict(api, vms, attacked, undefined);
            say(`${attacked.vmId}: encrypt fault ${encrypt.ok ? 'caught' : 'NOT caught'}: ${JSON.stringify(encrypt)}`);
        }
    } catch (err) {
        failure =
            err instanceof StepIncomplete
                ? { step: err.step, message: err.message }
                : { step: 'simulation', message: ensureErrorType(err).message };
        say(`FAILED: ${failure.message}`);
    } finally {
        for (const vm of vms) for (const d of vm.disks) await d.source.close().catch(() => undefined);
    }

    const summaries = api ? await summarize(api, vms, say) : [];
    if (host && options.beforeStop) {
        await options.beforeStop(host).catch((err: unknown) => say(`before stop: ${ensureErrorType(err).message}`));
    }
    // The provider lives until the host stops, as a site's would: an idle window (bench/cost) sees its heartbeats.
    if (heartbeat) clearInterval(heartbeat);
    await channel?.stop().catch(() => undefined);
    if (host) {
        say('stopping the local host');
        await host.stop().catch((err: unknown) => say(`stopping the host: ${ensureErrorType(err).message}`));
    }
    await new Promise<void>((done) => (hostLog ? hostLog.end(done) : done()));
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    say(
        `${totals.logs} logs, ${formatByteSize(totals.bytes)} uploaded; faults: ${totals.duplicates} duplicated, ` +
            `${totals.reordered} reordered, ${totals.dropped} dropped; ${seconds} s`,
    );
    const ok =
        failure === undefined &&
        replicas.length > 0 &&
        replicas.every((r) => r.equal) &&
        (!options.testFailover || (failoverDisks.length > 0 && failoverDisks.every((d) => d.equal))) &&
        (!options.recoveryPlan ||
            (recoveryPlan !== undefined &&
                recoveryPlan.orderProblems.length === 0 &&
                failoverDisks.length > 0 &&
                failoverDisks.every((d) => d.equal))) &&
        (!options.faults.has('encrypt') || encrypt?.ok === true) &&
        (!options.failover ||
            (failovers.length === vms.length &&
                failoverDisks.length > 0 &&
                failoverDisks.every((d) => d.equal) &&
                failovers.every((f) => f.kind === 'UnplannedFailover' || f.rpoSeconds === 0))) &&
        (!options.failback ||
            (failbacks.length === vms.length && failbacks.every((f) => f.disks.every((d) => d.equal))));
    return {
        vms: summaries,
        totals: { logs: totals.logs, bytes: totals.bytes, seconds },
        replicas,
        failoverDisks,
        failovers,
        failbacks,
        ...(recoveryPlan ? { recoveryPlan } : {}),
        ...(encrypt ? { encrypt } : {}),
        ...(failure ? { failure } : {}),
        warnings,
        ok,
    };
}

async function step<T>(name: string, action: () => Promise<T>): Promise<T> {
    try {
        return await action();
    } catch (err) {
        if (err instanceof StepIncomplete) throw err;
        throw new StepIncomplete(name, ensureErrorType(err).message);
    }
}

/**
 * The simulated site's policy: 30-second cycles, and an off-hours window open around the clock but for one
 * minute two hours ago (a policy window cannot be empty), so a resync may start at once.
 */
export function simulatedPolicy(now: Date): Record<string, unknown> {
    const minutes = (now.getUTCHours() * 60 + now.getUTCMinutes() + 24 * 60 - 120) % (24 * 60);
    const clock = (m: number) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    return {
        copyFrequencySeconds: SIMULATED_COPY_FREQUENCY_SECONDS,
        recoveryPointRetentionHours: 2,
        appConsistentSnapshotFrequencyHours: 0,
        initialReplicationStart: 'Immediately',
        offHoursWindow: { start: clock((minutes + 1) % (24 * 60)), end: clock(minutes), timeZone: 'UTC' },
        description: 'hvr simulate',
    };
}

/**
 * The site key providers sign with. The sites API hands it out at registration when it issues keys; until it
 * does, `HVR_SITE_KEY_ID` + `HVR_SITE_KEY` from the environment, or (with access to the app's storage) a key
 * issued through the provider-sites table that the command handler verifies against, with a warning.
 */
async function siteCredentials(
    siteId: string,
    registered: Record<string, unknown>,
    storageCs: string,
    warnings: string[],
    say: (line: string) => void,
): Promise<SiteCredentials> {
    const nested = [registered, registered.siteKey, registered.providerKey].find(
        (o): o is { keyId: string; key: string } =>
            typeof o === 'object' &&
            o !== null &&
            typeof (o as { keyId?: unknown }).keyId === 'string' &&
            typeof (o as { key?: unknown }).key === 'string',
    );
    if (nested) return { siteId, keyId: nested.keyId, key: nested.key };
    const envKeyId = process.env.HVR_SITE_KEY_ID;
    const envKey = process.env.HVR_SITE_KEY;
    if (envKeyId && envKey) return { siteId, keyId: envKeyId, key: envKey };
    const sites = new ProviderSitesTable(connectionFromString(storageCs));
    const now = new Date();
    let issued;
    try {
        issued = await sites.registerSite({ siteId, name: 'Simulated Hyper-V site', timeZone: 'UTC' }, now);
    } catch (err) {
        if (!(err instanceof HvrError && err.code === 'CONFLICT')) throw err;
        issued = await sites.rotateSiteKey(siteId, now);
    }
    warnings.push(
        'POST /api/sites issued no site key: the simulator issued one in the provider-sites table ' +
            '(shared/contracts/providerSites.ts) itself',
    );
    say(`warning: ${warnings[warnings.length - 1]}`);
    return { siteId, keyId: issued.keyId, key: issued.key };
}

/** VM → site ownership the command handler checks; recorded here only when registration issued no key either. */
async function assignVms(
    vms: SimVm[],
    siteId: string,
    registered: Record<string, unknown>,
    storageCs: string,
    warnings: string[],
): Promise<void> {
    if (typeof registered.keyId === 'string' || typeof registered.siteKey === 'object') return;
    const sites = new ProviderSitesTable(connectionFromString(storageCs));
    for (const vm of vms) await sites.assignVm(vm.vmId, siteId, new Date());
    warnings.push("the simulator recorded its VMs as the site's in the provider-sites table (assignVm) itself");
}

/** Chooses which logs the faults hit, from the seed: the same run every time. */
function planFaults(vms: SimVm[], options: SimulationOptions, random: SeededRandom): void {
    if (options.faults.has('encrypt') && options.cycles >= 2 && vms[0])
        vms[0].encryptAt = attackCycleOf(options.cycles);
    if (options.faults.has('drop') && options.cycles >= 1) {
        const vm = vms[0]!;
        const disk = vm.disks[vm.disks.length - 1]!;
        const cycle = Math.max(1, Math.ceil(options.cycles / 2));
        vm.droppedAt = { diskId: disk.diskId, cycle, sequence: -1 };
    }
    void random;
}

function pendingBytes(vm: SimVm): Record<string, number> {
    const out: Record<string, number> = {};
    for (const d of vm.disks) out[d.diskId] = vm.held.get(d.diskId)?.log.log.length ?? 0;
    return out;
}

interface VmRunContext {
    api: ManagementClient;
    provider: ProviderChannel;
    options: SimulationOptions;
    totals: Totals;
    say: (line: string) => void;
    stepTimeoutMs: number;
    /** Between two polls of one VM's state. */
    pollMs: number;
    host?: LocalHost;
    /** With `onPhase`: every VM arrives here once Protected, and the cycles start when all have. */
    protectedBarrier?: PhaseBarrier;
}

/** Why a VM is not where it should be, from the API: state, health reasons, the current job's failures. */
async function describeVm(api: ManagementClient, vmId: string): Promise<string> {
    try {
        const item = await api.protectedItem(vmId);
        const p = item.properties;
        const parts = [`${vmId} is ${p.protectionState ?? '?'}, health ${p.replicationHealth ?? '?'}`];
        if (p.resynchronizationState && p.resynchronizationState !== 'None') {
            parts.push(`resync ${p.resynchronizationState}${p.resyncReason ? ` (${p.resyncReason})` : ''}`);
        }
        for (const r of p.healthReasons ?? []) parts.push(`${r.code}: ${r.message ?? ''}`.trim());
        const jobs = await api.jobs(vmId);
        for (const job of jobs.filter((j) => j.state !== 'Succeeded')) {
            const running = job.tasks.find((t) => t.state === 'InProgress');
            parts.push(
                `job "${job.displayName}" ${job.state}` +
                    (running ? ` at task "${running.name}"${running.detail ? ` (${running.detail})` : ''}` : '') +
                    job.errors.map((e) => `; ${e.task ?? ''} ${e.code}: ${e.message}`).join(''),
            );
        }
        return parts.join('; ') + '.';
    } catch (err) {
        return `(the API could not say: ${ensureErrorType(err).message})`;
    }
}

/** Polls the API until `done` holds, or StepIncomplete naming the step and the VM's state. */
async function waitForItem(
    ctx: VmRunContext,
    vmId: string,
    step: string,
    done: (item: ProtectedItemView) => boolean | Promise<boolean>,
    timeoutMs = ctx.stepTimeoutMs,
    firstPollAfterMs = 0,
): Promise<ProtectedItemView> {
    const until = Date.now() + timeoutMs;
    if (firstPollAfterMs > 0) await new Promise((r) => setTimeout(r, Math.min(firstPollAfterMs, timeoutMs)));
    for (;;) {
        const item = await ctx.api.protectedItem(vmId).catch(() => undefined);
        if (item && (await done(item))) return item;
        if (item && FAILED_STATES.has(item.properties.protectionState ?? '')) {
            throw new StepIncomplete(step, await describeVm(ctx.api, vmId));
        }
        if (Date.now() > until) {
            throw new StepIncomplete(step, `not done after ${timeoutMs / 1000} s: ${await describeVm(ctx.api, vmId)}`);
        }
        await new Promise((r) => setTimeout(r, ctx.pollMs));
    }
}

/** Protection states after which nothing more happens until someone enables protection again. */
const FAILED_STATES: ReadonlySet<string> = new Set(['EnablingFailed', 'InitialReplicationFailed', 'DisablingFailed']);

/** `work`, unless the VM's protection fails meanwhile: then StepIncomplete at once instead of at the timeout. */
async function unlessProtectionFails<T>(ctx: VmRunContext, vmId: string, step: string, work: Promise<T>): Promise<T> {
    let settled = false;
    const watch = (async (): Promise<never> => {
        for (;;) {
            await new Promise((r) => setTimeout(r, 4 * ctx.pollMs));
            if (settled) return new Promise<never>(() => undefined);
            const item = await ctx.api.protectedItem(vmId).catch(() => undefined);
            if (!settled && item && FAILED_STATES.has(item.properties.protectionState ?? '')) {
                throw new StepIncomplete(step, await describeVm(ctx.api, vmId));
            }
        }
    })();
    watch.catch(() => undefined);
    try {
        return await Promise.race([work, watch]);
    } finally {
        settled = true;
    }
}

/**
 * Waits for a delta cycle's recovery point. The first poll comes at 80 % of the time the VM's last cycle took
 * (its apply time follows the fleet's load), so the polls per cycle stay a handful whatever the fleet, where polls
 * at a fixed pace would grow with the cycle's length. The wait's length is learned for the next cycle.
 */
async function waitForApplied(ctx: VmRunContext, vm: SimVm, cycle: number, shippedAt: number): Promise<void> {
    const firstPollAfterMs = firstPollDelayMs(vm.applyMs, Date.now() - shippedAt);
    await waitForItem(
        ctx,
        vm.vmId,
        `${vm.vmId} cycle ${cycle} applied`,
        () => hasRecoveryPoint(ctx, vm.vmId, cycleIdOf(cycle)),
        ctx.stepTimeoutMs,
        firstPollAfterMs,
    );
    vm.applyMs = Date.now() - shippedAt;
}

/** Of the last cycle's apply time, how much passes before the first poll for the next. */
const FIRST_POLL_SHARE = 0.8;

/** How long to wait before the first poll for a cycle shipped `sinceShippedMs` ago (0 for a VM's first cycle). */
export function firstPollDelayMs(lastApplyMs: number | undefined, sinceShippedMs: number): number {
    return lastApplyMs === undefined ? 0 : Math.max(0, Math.round(FIRST_POLL_SHARE * lastApplyMs - sinceShippedMs));
}

async function hasRecoveryPoint(ctx: VmRunContext, vmId: string, cycleId: string): Promise<boolean> {
    const points = await ctx.api.recoveryPoints(vmId).catch(() => []);
    return points.some((p) => p.properties.cycleId === cycleId);
}

function metadataFor(cycleId: string | undefined, capturedAt: Date, resync = false): Record<string, string> {
    return logMetadata({ ...(cycleId ? { cycleId } : {}), consistency: 'CrashConsistent', capturedAt, resync });
}

async function upload(
    ctx: VmRunContext,
    vm: SimVm,
    log: BuiltLog,
    grant: UploadGrantItem,
    metadata: Record<string, string>,
    repeat = false,
): Promise<void> {
    await step(`upload ${vm.vmId}/${log.diskId} log ${log.sequence}`, () => uploadLog(grant, log.log, metadata));
    if (!repeat) ctx.totals.logs++;
    ctx.totals.bytes += log.log.length;
}

const isStartReplication =
    (vmId: string) =>
    (e: ProviderEvent): e is StartReplicationEvent =>
        e.type === 'StartReplication' && e.vmId === vmId;

const isStartResync =
    (vmId: string) =>
    (e: ProviderEvent): e is StartResyncEvent =>
        e.type === 'StartResync' && e.vmId === vmId;

/** One VM from enable protection to its last cycle applied. */
async function replicateVm(vm: SimVm, ctx: VmRunContext): Promise<void> {
    const { api, provider, options } = ctx;
    const say = ctx.say;
    const { jobId } = await step(`enable protection of ${vm.vmId}`, () =>
        api.enableProtection(vm.vmId, {
            siteId: provider.site.siteId,
            policyName: POLICY_NAME,
            vm: {
                name: vm.name,
                generation: 2,
                disks: vm.disks.map((d) => ({
                    diskId: d.diskId,
                    sizeBytes: d.size,
                    logicalSectorBytes: 512,
                    isOsDisk: d.isOsDisk,
                })),
            },
        }),
    );
    say(`${vm.vmId}: enable protection accepted (job ${jobId})`);
    const startReplication = `StartReplication for ${vm.vmId}`;
    await unlessProtectionFails(
        ctx,
        vm.vmId,
        startReplication,
        provider.waitForEvent(isStartReplication(vm.vmId), ctx.stepTimeoutMs, startReplication, () =>
            describeVm(api, vm.vmId),
        ),
    );
    say(`${vm.vmId}: StartReplication received; initial replication of ${vm.disks.length} disk(s)`);

    // Initial replication with the provider kit: each disk's data as logs from sequence 1, the last of each
    // disk closing cycle `initial`, progress per disk.
    const ranges = await Promise.all(vm.disks.map((d) => d.source.dataRanges()));
    await step(`initial replication of ${vm.vmId}`, () =>
        shipInitialReplication(
            {
                channel: provider,
                vmId: vm.vmId,
                grantTimeoutMs: ctx.stepTimeoutMs,
                capturedAt: new Date(),
                onUploaded: (log) => {
                    ctx.totals.logs++;
                    ctx.totals.bytes += log.log.length;
                },
            },
            vm.disks.map((d, i) => ({ chain: d.chain, source: d.source, ranges: ranges[i]! })),
        ),
    );
    for (const disk of vm.disks) {
        say(`${vm.vmId}/${disk.diskId}: initial replication uploaded in ${disk.sequence} log(s)`);
    }
    await waitForItem(
        ctx,
        vm.vmId,
        `${vm.vmId} protected after initial replication`,
        (item) => item.properties.protectionState === 'Protected',
    );
    say(`${vm.vmId}: Protected`);
    await ctx.protectedBarrier?.arrive();

    // Delta cycles, as fast as the pipeline takes them: a cycle starts once the previous one is a recovery point.
    // (Running further ahead makes the disks of a VM finish cycles out of step, and the merge then rightly skips
    // the recovery points of the cycles no moment had on every disk at once.)
    let shippedAt = 0;
    for (let cycle = 1; cycle <= options.cycles; cycle++) {
        const previous = cycle - 1;
        const chainBroken = vm.droppedAt !== undefined && vm.droppedAt.cycle <= previous;
        const heldBack = [...vm.held.values()].some((h) => h.cycle === previous);
        if (previous >= 1 && !chainBroken && !heldBack) {
            await waitForApplied(ctx, vm, previous, shippedAt);
        }
        if (vm.encryptAt === cycle) {
            // The sources now are the previous cycle's point: what a failover to LatestClean must restore.
            const before = cycleIdOf(cycle - 1);
            vm.cleanPoint = { cycleId: before, rawPaths: await copySources(vm, before, ctx) };
        }
        await runCycle(vm, cycle, ctx);
        shippedAt = Date.now();
        if (options.changePoint && cycle === options.cycles - 1) await keepSourcesOf(vm, cycleIdOf(cycle), ctx);
    }
    for (const [diskId, held] of vm.held) {
        await upload(ctx, vm, held.log, held.grant, held.metadata);
        vm.held.delete(diskId);
    }

    if (vm.droppedAt) {
        await resyncAfterDrop(vm, ctx);
        return;
    }
    const lastCycle = cycleIdOf(options.cycles);
    if (options.cycles > 0) {
        await waitForApplied(ctx, vm, options.cycles, shippedAt);
    } else {
        await waitForItem(
            ctx,
            vm.vmId,
            `${vm.vmId} protected`,
            (item) => item.properties.protectionState === 'Protected',
        );
    }
    vm.lastCycleId = options.cycles === 0 ? INITIAL_REPLICATION_CYCLE_ID : lastCycle;
    say(`${vm.vmId}: cycle ${options.cycles} applied (recovery point ${vm.vmId}:${lastCycle})`);
}

/** The `encrypt` fault's checks: flagged points, the last clean point, and the drill's disks by qemu-img. */
async function encryptVerdict(
    api: ManagementClient,
    vms: readonly SimVm[],
    attacked: SimVm,
    disks: FailoverDiskComparison[] | undefined,
): Promise<EncryptReport> {
    const attackCycleId = cycleIdOf(attacked.encryptAt!);
    const expectedCleanCycleId = attacked.cleanPoint!.cycleId;
    const flags = await checkFlags(
        api,
        vms.map((v) => v.vmId),
        { vmId: attacked.vmId, attackCycleId, cleanCycleId: expectedCleanCycleId },
    );
    const failoverDisks = disks ? await qemuVerdicts(disks) : [];
    const problems = [...flags.problems];
    if (disks && failoverDisks.length !== attacked.disks.length) {
        problems.push('the drill to LatestClean gave no disks to compare');
    }
    for (const d of failoverDisks) {
        if (!d.equal || d.qemuImg === 'differs')
            problems.push(`failover disk ${d.diskId} is not the disk before the attack`);
    }
    return {
        vmId: attacked.vmId,
        attackCycleId,
        ...flags,
        expectedCleanCycleId,
        failoverDisks,
        problems,
        ok: problems.length === 0,
    };
}

function cycleIdOf(cycle: number): string {
    return `cycle-${cycle}`;
}

/** The network the simulated site's VMs are on, mapped for failover to a VNet in the dry run's ARM shape. */
const SIMULATED_NETWORK = 'sim-net';
const DRY_RUN_RECOVERY_VNET =
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dryrun/providers/Microsoft.Network/virtualNetworks/sim-recovery';

/** Copies the sources as they are at the end of `cycleId` (its writes are done): what that point must restore. */
async function keepSourcesOf(vm: SimVm, cycleId: string, ctx: VmRunContext): Promise<void> {
    vm.olderPoint = { cycleId, rawPaths: await copySources(vm, cycleId, ctx) };
}

/** Copies each source to `{diskId}.{cycleId}.raw` and returns the paths. */
async function copySources(vm: SimVm, cycleId: string, ctx: VmRunContext): Promise<Record<string, string>> {
    const dir = join(resolve(ctx.options.outDir), vm.vmId);
    const rawPaths: Record<string, string> = {};
    for (const disk of vm.disks) {
        rawPaths[disk.diskId] = join(dir, `${disk.diskId}.${cycleId}.raw`);
        await copyFile(join(dir, `${disk.diskId}.raw`), rawPaths[disk.diskId]!);
    }
    return rawPaths;
}

/** Pause between two bursts of guest writes while a planned failover waits for the shutdown. */
const GUEST_WRITE_PAUSE_MS = 100;

/**
 * The guest of a planned failover: writes in small bursts (nothing shipped) until the provider shuts it down;
 * then every write since the last cycle goes up as the final cycle, one log per disk, after the shutdown.
 */
function plannedGuest(vm: SimVm, ctx: VmRunContext): PlannedFailoverGuest {
    const pending = new Map<string, GuestWrite[]>(vm.disks.map((d) => [d.diskId, []]));
    const burst = Math.max(4096, Math.floor(ctx.options.churn / 8));
    return {
        startWriting: () => {
            let running = true;
            const loop = (async () => {
                while (running) {
                    for (const disk of vm.disks) pending.get(disk.diskId)!.push(...(await disk.runCycle(burst)));
                    await new Promise((r) => setTimeout(r, GUEST_WRITE_PAUSE_MS));
                }
            })();
            return async () => {
                running = false;
                await loop;
            };
        },
        pendingBytes: () => [...pending.values()].flat().reduce((n, w) => n + w.length, 0),
        shipFinalCycle: async (cycleId: string): Promise<CycleLog[]> => {
            const capturedAt = new Date();
            const logs: BuiltLog[] = [];
            for (const disk of vm.disks) {
                const writes = pending.get(disk.diskId)!;
                const entries: HrlWriteEntry[] = writes.map((w) => ({ diskOffset: w.offset, data: w.data! }));
                // A disk the guest did not touch still closes a log, so the final cycle names every disk.
                if (entries.length === 0) entries.push({ diskOffset: 0, data: await disk.source.read(0, 512) });
                logs.push(disk.buildLog(entries, capturedAt));
                writes.length = 0;
            }
            const grants = await ctx.provider.requestGrants(
                vm.vmId,
                logs.map((l) => ({ diskId: l.diskId, sequence: l.sequence, logId: l.logId })),
                ctx.stepTimeoutMs,
            );
            for (const log of logs) {
                const grant = grants.find((g) => g.diskId === log.diskId && g.sequence === log.sequence)!;
                await upload(ctx, vm, log, grant, metadataFor(cycleId, capturedAt));
            }
            vm.lastCycleId = cycleId;
            return logs.map((l) => ({ diskId: l.diskId, sequence: l.sequence, logId: l.logId, bytes: l.log.length }));
        },
    };
}

/** One replication cycle of a VM: the guest writes, one log per disk, grants, uploads (with faults), report. */
async function runCycle(vm: SimVm, cycle: number, ctx: VmRunContext): Promise<void> {
    const { provider, options, totals } = ctx;
    const cycleId = cycleIdOf(cycle);
    const logs: BuiltLog[] = [];
    const capturedAt = new Date();
    for (const disk of vm.disks) {
        const writes =
            vm.encryptAt === cycle
                ? await encryptInPlace(disk.source, `${options.seed}/${vm.vmId}/${disk.diskId}`)
                : await disk.runCycle(options.churn);
        logs.push(
            disk.buildLog(
                writes.map((w) => ({ diskOffset: w.offset, data: w.data! })),
                capturedAt,
            ),
        );
    }
    const grants = await provider.requestGrants(
        vm.vmId,
        logs.map((l) => ({ diskId: l.diskId, sequence: l.sequence, logId: l.logId })),
        ctx.stepTimeoutMs,
    );
    const metadata = metadataFor(cycleId, capturedAt);
    const faults = options.faults;
    for (const [i, log] of logs.entries()) {
        const grant = grants.find((g) => g.diskId === log.diskId && g.sequence === log.sequence)!;
        const dropped = vm.droppedAt?.diskId === log.diskId && vm.droppedAt.cycle === cycle;
        if (dropped) {
            vm.droppedAt!.sequence = log.sequence;
            totals.dropped++;
            ctx.say(`${vm.vmId}/${log.diskId}: log ${log.sequence} (${cycleId}) lost on the way (fault: drop)`);
        } else if (
            faults.has('reorder') &&
            cycle < options.cycles &&
            (cycle + i) % 2 === 1 &&
            !vm.held.has(log.diskId)
        ) {
            vm.held.set(log.diskId, { cycle, log, grant, metadata });
            totals.reordered++;
        } else {
            await upload(ctx, vm, log, grant, metadata);
        }
        const held = vm.held.get(log.diskId);
        if (held && held.log !== log) {
            // The held log goes up after its successor: the merge must wait for it and then apply both in order.
            await upload(ctx, vm, held.log, held.grant, held.metadata);
            vm.held.delete(log.diskId);
        }
        if (faults.has('duplicate') && !dropped && (cycle + i) % 3 === 0) {
            await upload(ctx, vm, log, grant, metadata, true);
            totals.duplicates++;
        }
    }
    await provider.send({
        type: 'CycleCompleted',
        version: 1,
        vmId: vm.vmId,
        cycleId,
        consistency: 'CrashConsistent',
        capturedAt: capturedAt.toISOString(),
        logs: logs.map((l) => ({ diskId: l.diskId, sequence: l.sequence, logId: l.logId, bytes: l.log.length })),
    });
    ctx.say(
        `${vm.vmId}: ${cycleId} uploaded (${logs.map((l) => `${l.diskId} #${l.sequence} ${formatByteSize(l.dataBytes)}`).join(', ')})`,
    );
}

/** Whether the app the local host loaded registers a function (an orchestration, a timer) by that name. */
function hostHas(ctx: VmRunContext, name: string): boolean | undefined {
    return ctx.host ? ctx.host.functions.some((f) => f.name === name) : undefined;
}

/**
 * After the `drop` fault: the pipeline must notice the gap by itself (the merge judges it lost once the provider
 * reported a few cycles past it, on the next upload or the gap sweep's next pass), mark the disk for resync,
 * start a resync at once (the policy's window is open), and the provider answers StartResync with a resync
 * log. Each of those is a step that is reported if it does not happen.
 */
async function resyncAfterDrop(vm: SimVm, ctx: VmRunContext): Promise<void> {
    const dropped = vm.droppedAt!;
    const detect = `the pipeline notices the lost log ${dropped.sequence} of ${vm.vmId}/${dropped.diskId}`;
    // The longest the rule may take with this run's policy (30 s cycles), plus one sweep interval and slack.
    const detectionMs =
        (chainGapTimeoutSeconds(SIMULATED_COPY_FREQUENCY_SECONDS, LOCAL_GAP_MIN_SECONDS) +
            2 * GAP_SWEEP_INTERVAL_SECONDS) *
        1000;
    const noticedAfter = Date.now();
    await waitForItem(
        ctx,
        vm.vmId,
        detect,
        (item) => {
            const p = item.properties;
            return (
                (p.resynchronizationState !== undefined && p.resynchronizationState !== 'None') ||
                (p.healthReasons ?? []).some((r) => r.code === 'ResyncRequired')
            );
        },
        Math.max(ctx.stepTimeoutMs, detectionMs),
    );
    ctx.say(
        `${vm.vmId}: noticed ${((Date.now() - noticedAfter) / 1000).toFixed(1)} s after the last cycle was shipped`,
    );
    ctx.say(`${vm.vmId}: the pipeline marked ${dropped.diskId} for resynchronization`);
    const start = `StartResync for ${vm.vmId} after the lost log`;
    if (hostHas(ctx, 'resync') === false) {
        throw new StepIncomplete(
            start,
            `${vm.vmId} needs a resync but the app registers no "resync" orchestration (orchestrations/resync.ts ` +
                `has not landed), so no StartResync can come. ${await describeVm(ctx.api, vm.vmId)}`,
        );
    }
    if (ctx.host && hostHas(ctx, 'resyncScheduler')) {
        // Every 5 minutes in Azure; the simulated site's window is open, so the next pass starts it.
        await ctx.host.fireTimer('resyncScheduler');
    }
    const event = await ctx.provider.waitForEvent(
        (e): e is StartResyncEvent => isStartResync(vm.vmId)(e) && (e.disks ?? []).some((d) => d.round === 1),
        ctx.stepTimeoutMs,
        start,
        () => describeVm(ctx.api, vm.vmId),
    );
    await answerStartResync(vm, event, ctx);
    await waitForItem(ctx, vm.vmId, `${vm.vmId} resynchronized`, (item) =>
        ['ResynchronizationCompleted', 'None'].includes(item.properties.resynchronizationState ?? ''),
    );
    ctx.say(`${vm.vmId}: resynchronized; one more cycle to show delta replication resumed`);
    const cycle = ctx.options.cycles + 1;
    await runCycle(vm, cycle, ctx);
    await waitForItem(ctx, vm.vmId, `${vm.vmId} cycle ${cycle} applied after the resync`, () =>
        hasRecoveryPoint(ctx, vm.vmId, cycleIdOf(cycle)),
    );
    vm.lastCycleId = cycleIdOf(cycle);
}

/** Manifests are small (digests of a disk's blocks); a read-only SAS GET, bounded. */
async function downloadManifest(url: string, step: string): Promise<Buffer> {
    const response = await fetch(url, { signal: AbortSignal.timeout(60_000) }).catch((err: Error) => {
        throw new StepIncomplete(step, `manifest download failed: ${err.message}`);
    });
    if (!response.ok) throw new StepIncomplete(step, `manifest download answered ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
}

/**
 * The provider's side of a resync (docs/resync.md, "What a provider does"): per disk, compare the source with
 * the replica's digest manifest (shared/resync ProviderComparison), asking for finer manifests with
 * ResyncDigestRequest until the differing 4 KiB blocks are known, then upload them as one resync log at the
 * position the event names, and report completion.
 */
async function answerStartResync(
    vm: SimVm,
    event: StartResyncEvent,
    ctx: VmRunContext,
): Promise<{ manifestBytes: number; requestBytes: number; logBytes: number }> {
    const moved = { manifestBytes: 0, requestBytes: 0, logBytes: 0 };
    const step = `StartResync for ${vm.vmId}`;
    const disks = (event.disks ?? []).filter((d) => d.round === 1);
    if (disks.length === 0) {
        throw new StepIncomplete(step, 'the event carries no round-1 disks[] (manifest links and resync sequence)');
    }
    const capturedAt = new Date();
    const percent: Record<string, number> = Object.fromEntries(disks.map((d) => [d.diskId, 0]));
    const progress = () =>
        ctx.provider.send({
            type: 'ResyncProgress',
            version: 1,
            vmId: vm.vmId,
            resyncId: event.resyncId,
            disks: { ...percent },
        });
    await progress();
    const logs: BuiltLog[] = [];
    for (const target of disks) {
        const disk = vm.disks.find((d) => d.diskId === target.diskId);
        if (!disk) throw new StepIncomplete(step, `names disk ${target.diskId}, which the VM has not`);
        const comparison = await ProviderComparison.begin(
            disk.source,
            await downloadManifest(target.manifestUrl, step),
        );
        let round = 1;
        for (let request = comparison.nextRequest(); request; request = comparison.nextRequest()) {
            round++;
            const command = {
                type: 'ResyncDigestRequest',
                version: 1,
                vmId: vm.vmId,
                resyncId: event.resyncId,
                diskId: disk.diskId,
                round,
                request: encodeDigestRequest(request).toString('base64'),
            };
            try {
                validateCommand(command);
            } catch (err) {
                throw new StepIncomplete(
                    `resync comparison of ${vm.vmId}/${disk.diskId}`,
                    `the round ${round} ResyncDigestRequest does not pass the provider contract ` +
                        `(${ensureErrorType(err).message})`,
                );
            }
            const answer = ctx.provider.waitForEvent(
                (e): e is StartResyncEvent =>
                    e.type === 'StartResync' &&
                    e.resyncId === event.resyncId &&
                    (e.disks ?? []).some((d) => d.diskId === disk.diskId && d.round === round),
                ctx.stepTimeoutMs,
                `manifest round ${round} for ${vm.vmId}/${disk.diskId}`,
                () => describeVm(ctx.api, vm.vmId),
            );
            await ctx.provider.send(command as unknown as ProviderCommand);
            const next = (await answer).disks!.find((d) => d.diskId === disk.diskId && d.round === round)!;
            await comparison.compare(await downloadManifest(next.manifestUrl, step));
        }
        moved.manifestBytes += comparison.stats.manifestBytes;
        moved.requestBytes += comparison.stats.requestBytes;
        const entries: HrlWriteEntry[] = [];
        for (const range of comparison.differingRanges()) {
            entries.push({ diskOffset: range.offset, data: await disk.source.read(range.offset, range.length) });
        }
        // The resync log takes the position the pipeline names and starts the chain the next cycles follow.
        disk.chain.moveTo(target.resyncSequence);
        logs.push(disk.buildLog(entries, capturedAt));
        ctx.say(
            `${vm.vmId}/${disk.diskId}: resync compared in ${round} round(s); ` +
                `${formatByteSize(logs[logs.length - 1]!.dataBytes)} differ`,
        );
        percent[disk.diskId] = 50;
        await progress();
    }
    const grants = await ctx.provider.requestGrants(
        vm.vmId,
        logs.map((log) => ({ diskId: log.diskId, sequence: log.sequence, logId: log.logId })),
        ctx.stepTimeoutMs,
    );
    for (const log of logs) {
        const grant = grants.find((g) => g.diskId === log.diskId && g.sequence === log.sequence)!;
        await upload(ctx, vm, log, grant, metadataFor(undefined, capturedAt, true));
        moved.logBytes += log.log.length;
        percent[log.diskId] = 100;
    }
    if (ctx.host) {
        // In Azure, Event Grid queues a new blob's event within about a second; the local host finds it at its
        // next container scan (every 2 s). If ResyncCompleted outran the merge, the resync's verify would find
        // the logs unapplied and retry only a minute later. So publish now, as Event Grid would: the first scan
        // may have listed the container before the upload, the second sees the logs; then run the merge queue
        // until it is empty.
        await ctx.host.scanNow();
        await ctx.host.scanNow();
        await ctx.host.drainStorageQueues();
    }
    await progress();
    await ctx.provider.send({
        type: 'ResyncCompleted',
        version: 1,
        vmId: vm.vmId,
        resyncId: event.resyncId,
        diskIds: logs.map((l) => l.diskId),
    });
    return moved;
}

/**
 * After the committed failovers: each VM in Azure writes, is failed back and (with `reprotect`) re-protected; then
 * the simulation's cycles run again on the levelled disks, and the replica check at the end judges them.
 */
async function failBackAll(
    vms: SimVm[],
    failovers: FailoverReport[],
    ctx: VmRunContext,
    blob: ReturnType<typeof connectionFromString>['blob'],
    outDir: string,
    random: SeededRandom,
): Promise<FailbackReport[]> {
    const options = ctx.options.failback!;
    const runs = await Promise.allSettled(
        vms.map(async (vm) => {
            const failover = failovers.find((f) => f.vmId === vm.vmId)!;
            const report = await runFailbackAndReprotect(
                {
                    api: ctx.api,
                    blob,
                    provider: ctx.provider,
                    outDir,
                    stepTimeoutMs: ctx.stepTimeoutMs,
                    random: random.fork(`failback-${vm.vmId}`),
                    say: ctx.say,
                    describe: (vmId) => describeVm(ctx.api, vmId),
                    answerStartResync: (event) => answerStartResync(vm, event, ctx),
                    settle: async () => {
                        if (ctx.host) await ctx.host.drainStorageQueues();
                    },
                },
                {
                    vmId: vm.vmId,
                    drillId: failover.drillId,
                    disks: vm.disks.map((d) => ({
                        diskId: d.diskId,
                        source: d.source,
                        rawPath: join(outDir, vm.vmId, `${d.diskId}.raw`),
                    })),
                    churn: ctx.options.churn,
                },
                options.dataSyncOption,
                options.reprotect,
            );
            if (options.reprotect) {
                for (let n = 1; n <= Math.max(1, Math.min(ctx.options.cycles, 2)); n++) {
                    const cycle = ctx.options.cycles + 100 + n;
                    await runCycle(vm, cycle, ctx);
                    await waitForItem(ctx, vm.vmId, `${vm.vmId} cycle ${cycle} applied after re-protect`, () =>
                        hasRecoveryPoint(ctx, vm.vmId, cycleIdOf(cycle)),
                    );
                    vm.lastCycleId = cycleIdOf(cycle);
                }
                ctx.say(`${vm.vmId}: delta cycles resumed after re-protect`);
            }
            return report;
        }),
    );
    const failed = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return runs.map((r) => (r as PromiseFulfilledResult<FailbackReport>).value);
}

async function compareAll(vms: SimVm[], outDir: string, storageCs: string): Promise<ReplicaComparison[]> {
    const blob = connectionFromString(storageCs).blob;
    const out: ReplicaComparison[] = [];
    for (const vm of vms) {
        for (const disk of vm.disks) {
            await disk.source.close();
            const rawPath = join(outDir, vm.vmId, `${disk.diskId}.raw`);
            const vhdPath = join(outDir, vm.vmId, `${disk.diskId}.vhd`);
            await downloadReplica(blob, vm.vmId, disk.diskId, vhdPath);
            out.push({
                vmId: vm.vmId,
                diskId: disk.diskId,
                rawPath,
                vhdPath,
                ...(await compareReplicaTwice(rawPath, vhdPath)),
            });
        }
    }
    return out;
}

/** Each VM as the API reports it now. */
async function summarize(api: ManagementClient, vms: SimVm[], say: (line: string) => void): Promise<VmSummary[]> {
    const out: VmSummary[] = [];
    for (const vm of vms) {
        try {
            const item = await api.protectedItem(vm.vmId);
            const points = await api.recoveryPoints(vm.vmId);
            const jobs = await api.jobs(vm.vmId);
            out.push({
                vmId: vm.vmId,
                state: item.properties.protectionState ?? 'Unknown',
                health: item.properties.replicationHealth ?? 'Unknown',
                recoveryPoints: points.length,
                jobs: jobs.map((j) => ({ name: j.displayName, state: j.state })),
            });
        } catch (err) {
            say(`${vm.vmId}: no state from the API (${ensureErrorType(err).message})`);
            out.push({ vmId: vm.vmId, state: 'Unknown', health: 'Unknown', recoveryPoints: 0, jobs: [] });
        }
    }
    return out;
}
