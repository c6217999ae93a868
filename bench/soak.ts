import { ChildProcess, fork } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ProviderEvent, StartReplicationEvent } from '../shared/contracts/messages';
import { ensureErrorType, HvrError } from '../shared/errors';
import { REPLICA_LOGS_CONTAINER } from '../shared/replica/logBlob';
import { getReplicaDisk } from '../shared/state/disks';
import { getRecoveryPoint } from '../shared/state/recoveryPoints';
import { connectionFromString } from '../shared/storage/connections';
import { deadline } from '../shared/storage/deadline';
import { InvocationCount, RunningAzurite, startAzurite } from '../packages/functions-local/src';
import {
    ProviderChannel,
    ShipChannel,
    shipCycle,
    shipInitialReplication,
    SiteCredentials,
    uploadLog,
} from '../packages/provider-kit/src';
import { DiskChain } from '../packages/provider-kit/src';
import { ManagementClient } from '../tools/simulator/managementClient';
import { qemuCompare } from '../tools/simulator/qemuCompare';
import { SeededRandom } from '../tools/simulator/random';
import { compareReplica, downloadReplica } from '../tools/simulator/replicaCheck';
import { simulatedPolicy } from '../tools/simulator/simulation';
import { parseSoakArgs, soakDiskBytes } from './soak/args';
import { PacedDisk } from './soak/pacedDisk';
import { RpoSampler, spread } from './soak/stats';
import { readAppliedMerges } from './soak/mergeLog';
import { startStorageCounting, StorageCounting, transactionsBetween } from './soak/storageCounting';

/**
 * `soak` benchmark (docs/benchmarks.md): VMs whose guests write to their disks at a steady rate, a provider on
 * the provider kit shipping a cycle every copy frequency, against the local host in a process of its own on an
 * Azurite this run starts; RPO sampled every second, the host's CPU and memory, executions and storage calls
 * per VM-cycle, and every replica checked against its source at the end.
 */

const POLICY_NAME = 'soak';
const STEP_TIMEOUT_MS = 10 * 60_000;
const GUEST_TICK_MS = 100;
const STATS_EVERY_MS = 10_000;
const MEMORY_EVERY_MS = 60_000;
/** How long the last cycle may take to become a recovery point after the run. */
const DRAIN_TIMEOUT_MS = 10 * 60_000;

function progress(message: string): void {
    process.stderr.write(`bench soak [${new Date().toISOString().slice(11, 19)}]: ${message}\n`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

interface HostStats {
    cpuSeconds: number;
    rssBytes: number;
    peakRssBytes: number;
    invocations: InvocationCount[];
}

/** The host child: started, asked for stats, stopped. */
class SoakHost {
    private waiting: ((stats: HostStats) => void)[] = [];
    private constructor(
        private readonly child: ChildProcess,
        readonly apiUrl: string,
        readonly functionKey: string,
        readonly providerBus: string,
    ) {
        child.on('message', (m: { stats?: HostStats }) => {
            if (m.stats) for (const w of this.waiting.splice(0)) w(m.stats);
        });
    }

    static async start(storage: string, durable: string, logPath: string): Promise<SoakHost> {
        const log = createWriteStream(logPath);
        const child = fork(join(__dirname, 'soakHost.js'), [], {
            env: { ...process.env, BENCH_CONN: storage, BENCH_DURABLE: durable },
            stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        });
        child.stdout!.pipe(log);
        child.stderr!.pipe(log);
        const ready = await new Promise<{ apiUrl: string; functionKey: string; providerBus: string }>((ok, fail) => {
            const timer = setTimeout(
                () => fail(new Error(`the host did not start in 5 minutes (see ${logPath})`)),
                300_000,
            );
            child.on('message', (m: { ready?: boolean; apiUrl: string; functionKey: string; providerBus: string }) => {
                if (m.ready) {
                    clearTimeout(timer);
                    ok(m);
                }
            });
            child.on('exit', (code) =>
                fail(new Error(`the host exited (${code}) before it was ready (see ${logPath})`)),
            );
        });
        return new SoakHost(child, ready.apiUrl, ready.functionKey, ready.providerBus);
    }

    get pid(): number {
        return this.child.pid ?? 0;
    }

    stats(): Promise<HostStats> {
        return new Promise((ok, fail) => {
            const timer = setTimeout(() => fail(new Error('the host did not answer stats in 60 s')), 60_000);
            this.waiting.push((s) => {
                clearTimeout(timer);
                ok(s);
            });
            this.child.send({ type: 'stats' });
        });
    }

    async stop(): Promise<void> {
        if (this.child.exitCode !== null) return;
        const exited = new Promise((r) => this.child.on('exit', r));
        this.child.send({ type: 'stop' });
        const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
        await exited;
        clearTimeout(timer);
    }
}

/** A process's CPU seconds (user + system) from /proc (Linux, 100 ticks a second); undefined elsewhere. */
async function cpuSecondsOf(pid: number): Promise<number | undefined> {
    try {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
        return undefined;
    }
}

/** A process's resident set from /proc (Linux), in bytes; undefined elsewhere. */
async function rssOf(pid: number): Promise<number | undefined> {
    try {
        const status = await readFile(`/proc/${pid}/status`, 'utf8');
        const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
        return kb ? Number(kb) * 1024 : undefined;
    } catch {
        return undefined;
    }
}

interface CycleRecord {
    vmId: string;
    cycleId: string;
    capturedAt: Date;
    /** When the cycle's shipping started (it may wait for the previous cycle) and when CycleCompleted went. */
    shipStartedAt: Date;
    shippedAt?: Date;
    logs: number;
    bytes: number;
    /** When the point's row was created (its createdAt) and when the bench saw it. */
    pointCreatedAt?: Date;
    pointSeenAt?: Date;
    /** A later cycle's point came first: this cycle has none (the disks finished it out of step). */
    noPoint?: boolean;
    /** vmId/diskId/sequence of each disk's log closing the cycle. */
    closing?: string[];
}

interface SoakVm {
    vmId: string;
    disks: { disk: PacedDisk; chain: DiskChain }[];
    cycles: CycleRecord[];
    /** Cycles shipped whose point has not been seen yet. */
    pending: CycleRecord[];
    /** Cycles that had to start late because the previous one was still shipping. */
    lateStarts: number;
    /** What the VM's provider is doing now, and since when (the watchdog names a step that takes too long). */
    phase: { what: string; since: number };
}

const MiB = 1024 * 1024;
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** Refuses to start a soak that would fill its disk halfway (Azurite and the guests then fail every write). */
async function requireFreeSpace(dir: string, needed: number): Promise<void> {
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (free < needed) {
        const GiB = 1024 * MiB;
        throw new HvrError(
            'VALIDATION_FAILED',
            `This soak needs about ${round(needed / GiB)} GiB free under ${dir} (the sources, and every byte the ` +
                `guests write kept by Azurite's snapshots), and ${round(free / GiB)} GiB are; pass --out on a ` +
                `larger disk, fewer --minutes, a lower --churn, or --azurite-in-memory.`,
        );
    }
}

export async function bench(argv: readonly string[] = []): Promise<Record<string, unknown>> {
    const options = parseSoakArgs(argv);
    const outDir = resolve(options.out ?? (await mkdtemp(join(tmpdir(), 'hvr-bench-soak-'))));
    await mkdir(outDir, { recursive: true });
    await requireFreeSpace(outDir, soakDiskBytes(options)).catch(async (err: unknown) => {
        if (options.out === undefined) await rm(outDir, { recursive: true, force: true });
        throw err;
    });
    const load = async () => (await readFile('/proc/loadavg', 'utf8').catch(() => '')).split(' ').slice(0, 3).join(' ');
    progress(
        `${JSON.stringify({ ...options, diskSize: `${options.diskSize / MiB}M`, churn: `${options.churn / MiB}M/s` })}, out ${outDir}, load ${await load()}`,
    );

    let azurite: RunningAzurite | undefined;
    let storage: StorageCounting | undefined;
    let host: SoakHost | undefined;
    let channel: ProviderChannel | undefined;
    const timers: NodeJS.Timeout[] = [];
    const vms: SoakVm[] = [];
    let azuriteGone = false;
    try {
        const azuriteDir = join(outDir, 'azurite');
        if (!options.azuriteInMemory) await mkdir(azuriteDir, { recursive: true });
        azurite = await startAzurite({
            startTimeoutMs: 300_000,
            ...(options.azuriteInMemory ? {} : { location: azuriteDir }),
        });
        // Azurite gone mid-run (its process died): every storage call fails from then on, so the run stops, saying why.
        const azuriteLost = azurite.exited.then((exit): Promise<never> => {
            if (exit.expected) return new Promise<never>(() => undefined);
            azuriteGone = true;
            const how = exit.signal ?? `exit code ${exit.code}`;
            throw new HvrError(
                'INTERNAL',
                `Azurite stopped at ${new Date().toISOString()} (${how}): ${exit.reason}. The run cannot go on ` +
                    `(docs/benchmarks.md, "Azurite's blob database").`,
            );
        });
        azuriteLost.catch(() => undefined);
        const unlessAzuriteLost = <T>(work: Promise<T>): Promise<T> => Promise.race([work, azuriteLost]);
        storage = await startStorageCounting(azurite);
        progress(
            `Azurite (pid ${azurite.pid}, ${options.azuriteInMemory ? 'in memory' : `data in ${azuriteDir}`}); starting the host`,
        );
        host = await SoakHost.start(storage.connectionString, options.durable, join(outDir, 'host.log'));
        progress(`host (pid ${host.pid}) at ${host.apiUrl}; its log: ${join(outDir, 'host.log')}`);
        // The bench's own reads (points, replicas) go to Azurite directly: they are not the pipeline's calls.
        const direct = connectionFromString(azurite.connectionString);
        const scope = { conn: direct, tablePrefix: '' };
        await direct.blob.getContainerClient(REPLICA_LOGS_CONTAINER).createIfNotExists({ abortSignal: deadline() });

        const api = new ManagementClient(host.apiUrl, host.functionKey);
        const siteId = 'soak-site';
        const registered = await api.registerSite({ siteId, name: 'Soak site', kind: 'HyperVSite', timeZone: 'UTC' });
        const key = registered.siteKey as SiteCredentials | undefined;
        if (!key?.keyId || !key.key) throw new HvrError('CONFLICT', 'POST /api/sites returned no site key');
        const credentials: SiteCredentials = { siteId, keyId: key.keyId, key: key.key };
        await api.putPolicy(POLICY_NAME, {
            ...simulatedPolicy(new Date()),
            copyFrequencySeconds: options.copyFrequency,
            recoveryPointRetentionHours: options.retentionHours,
            description: 'bench soak',
        });
        channel = new ProviderChannel(credentials, host.providerBus);
        channel.start();
        const provider = channel;
        await provider.send({
            type: 'Register',
            version: 1,
            providerId: 'soak-provider',
            kind: 'HyperVHost',
            hostName: 'soak-hyperv',
            providerVersion: '1.0.0',
        });

        const random = new SeededRandom(options.seed);
        for (let v = 1; v <= options.vms; v++) {
            const vmId = `vm-${v}`;
            await mkdir(join(outDir, vmId), { recursive: true });
            const disks = [];
            for (let d = 0; d < options.disks; d++) {
                const diskId = d === 0 ? 'os' : `data${d}`;
                const disk = await PacedDisk.create(
                    diskId,
                    join(outDir, vmId, `${diskId}.raw`),
                    options.diskSize,
                    random.fork(`${vmId}/${diskId}`),
                );
                disks.push({ disk, chain: new DiskChain(diskId) });
            }
            vms.push({
                vmId,
                disks,
                cycles: [],
                pending: [],
                lateStarts: 0,
                phase: { what: 'starting', since: Date.now() },
            });
        }
        timers.push(
            setInterval(() => {
                provider
                    .send({
                        type: 'Heartbeat',
                        version: 1,
                        providerId: 'soak-provider',
                        vms: vms.map((vm) => ({
                            vmId: vm.vmId,
                            pendingLogBytes: Object.fromEntries(vm.disks.map((d) => [d.disk.diskId, 0])),
                        })),
                    })
                    .catch((err: unknown) => progress(`heartbeat not sent: ${ensureErrorType(err).message}`));
            }, 30_000),
        );

        // ---- enable protection and initial replication (each disk holds a first write of its boot area) ----
        for (const vm of vms) for (const { disk } of vm.disks) await disk.write(MiB);
        await Promise.all(
            vms.map(async (vm) => {
                await api.enableProtection(vm.vmId, {
                    siteId,
                    policyName: POLICY_NAME,
                    vm: {
                        name: `soak-${vm.vmId}`,
                        generation: 2,
                        disks: vm.disks.map(({ disk }, i) => ({
                            diskId: disk.diskId,
                            sizeBytes: disk.size,
                            logicalSectorBytes: 512,
                            isOsDisk: i === 0,
                        })),
                    },
                });
                await provider.waitForEvent(
                    (e: ProviderEvent): e is StartReplicationEvent =>
                        e.type === 'StartReplication' && e.vmId === vm.vmId,
                    STEP_TIMEOUT_MS,
                    `StartReplication for ${vm.vmId}`,
                );
                const ranges = await Promise.all(vm.disks.map(({ disk }) => disk.capture()));
                await shipInitialReplication(
                    { channel: provider, vmId: vm.vmId, grantTimeoutMs: STEP_TIMEOUT_MS, capturedAt: new Date() },
                    vm.disks.map(({ disk, chain }, i) => ({ chain, source: disk, ranges: ranges[i]! })),
                );
                for (const { disk } of vm.disks) await disk.release();
                const until = Date.now() + STEP_TIMEOUT_MS;
                for (;;) {
                    const item = await api.protectedItem(vm.vmId).catch(() => undefined);
                    if (item?.properties.protectionState === 'Protected') break;
                    if (Date.now() > until)
                        throw new HvrError('TIMEOUT', `${vm.vmId} not Protected after initial replication`);
                    await sleep(1000);
                }
            }),
        );
        progress(
            `${vms.length} VM(s) Protected; the guests write ${options.churn / MiB} MiB/s per disk for ${options.minutes} min, load ${await load()}`,
        );

        // ---- the measured window ----
        const sampler = new RpoSampler(vms.map((v) => v.vmId));
        const memory: {
            atSeconds: number;
            hostRssMiB: number;
            azuriteRssMiB: number | undefined;
            benchRssMiB: number;
            load: string;
        }[] = [];
        const statsStart = await host.stats();
        const storageStart = storage.counts();
        const benchCpuStart = process.cpuUsage();
        const azuriteCpuStart = await cpuSecondsOf(azurite.pid);
        const writtenBefore = vms.flatMap((vm) => vm.disks).reduce((n, { disk }) => n + disk.writtenBytes, 0);
        const started = Date.now();
        const endAt = started + options.minutes * 60_000;
        let hostPeakRss = statsStart.rssBytes;
        let azuritePeakRss = 0;
        let running = true;

        for (const vm of vms) {
            for (const { disk } of vm.disks) {
                let owed = 0;
                let last = Date.now();
                let busy = false;
                timers.push(
                    setInterval(() => {
                        const now = Date.now();
                        // At most a second behind: a guest slowed by its disk writes less, and the result says so.
                        owed = Math.min(owed + (options.churn * (now - last)) / 1000, options.churn);
                        last = now;
                        if (busy || !running || owed < 4096) return;
                        busy = true;
                        disk.write(Math.floor(owed))
                            .then((written) => (owed -= written))
                            .catch((err: unknown) =>
                                progress(`${vm.vmId}/${disk.diskId}: write failed: ${ensureErrorType(err).message}`),
                            )
                            .finally(() => (busy = false));
                    }, GUEST_TICK_MS),
                );
            }
        }

        const watchPoints = async (vm: SoakVm): Promise<void> => {
            for (const cycle of [...vm.pending].reverse()) {
                const point = await getRecoveryPoint(scope, vm.vmId, cycle.cycleId);
                if (!point) continue;
                cycle.pointCreatedAt = new Date(point.createdAt);
                cycle.pointSeenAt = new Date();
                sampler.pointRecorded(vm.vmId, new Date(point.capturedAt));
                const at = vm.pending.indexOf(cycle);
                for (const older of vm.pending.slice(0, at)) older.noPoint = true;
                vm.pending.splice(0, at + 1);
                return;
            }
        };
        let watching = true;
        const watcher = (async () => {
            while (watching && !azuriteGone) {
                const tick = Date.now();
                await Promise.all(vms.map((vm) => watchPoints(vm).catch(() => undefined)));
                if (running) sampler.sample(new Date());
                await sleep(1000 - (Date.now() - tick));
            }
        })();
        const sampleStats = async (): Promise<void> => {
            const s = await host!.stats().catch(() => undefined);
            if (s) hostPeakRss = Math.max(hostPeakRss, s.rssBytes);
            const a = await rssOf(azurite!.pid);
            if (a) azuritePeakRss = Math.max(azuritePeakRss, a);
        };
        timers.push(setInterval(() => void sampleStats(), STATS_EVERY_MS));
        const sampleMemory = async (): Promise<void> => {
            const s = await host!.stats().catch(() => undefined);
            const a = await rssOf(azurite!.pid);
            memory.push({
                atSeconds: Math.round((Date.now() - started) / 1000),
                hostRssMiB: s ? round(s.rssBytes / MiB) : -1,
                azuriteRssMiB: a === undefined ? undefined : round(a / MiB),
                benchRssMiB: round(process.memoryUsage.rss() / MiB),
                load: await load(),
            });
            if (options.memoryFile)
                await writeFile(options.memoryFile, JSON.stringify(memory, null, 1) + '\n').catch(() => undefined);
            const m = memory[memory.length - 1]!;
            progress(
                `t=${m.atSeconds}s host RSS ${m.hostRssMiB} MiB, Azurite RSS ${m.azuriteRssMiB} MiB, load ${m.load}`,
            );
        };
        await sampleMemory();
        timers.push(
            setInterval(() => {
                for (const vm of vms) {
                    const seconds = (Date.now() - vm.phase.since) / 1000;
                    if (seconds > 2 * options.copyFrequency && !vm.phase.what.startsWith('waiting')) {
                        progress(`watchdog: ${vm.vmId} at "${vm.phase.what}" for ${round(seconds)} s`);
                    }
                }
            }, 30_000),
        );
        timers.push(setInterval(() => void sampleMemory(), MEMORY_EVERY_MS));

        let cycleNumber = 0;
        const uploads = new Map<string, { at: Date; cycleId: string; bytes: number }>();
        const phase = (vm: SoakVm, what: string) => (vm.phase = { what, since: Date.now() });
        const shipOne = async (vm: SoakVm, cycleId: string): Promise<void> => {
            const capturedAt = new Date();
            phase(vm, `${cycleId}: capture`);
            const ranges = await Promise.all(vm.disks.map(({ disk }) => disk.capture()));
            // The kit's channel and upload, each step named for the watchdog.
            const watched: ShipChannel = {
                send: (command) => {
                    phase(vm, `${cycleId}: send ${command.type}`);
                    return provider.send(command);
                },
                requestGrants: (vmId, requests, timeoutMs) => {
                    phase(
                        vm,
                        `${cycleId}: UploadGrant for ${requests.map((r) => `${r.diskId}#${r.sequence}`).join(' ')}`,
                    );
                    return provider.requestGrants(vmId, requests, timeoutMs);
                },
            };
            const record: CycleRecord = {
                vmId: vm.vmId,
                cycleId,
                capturedAt,
                shipStartedAt: capturedAt,
                logs: 0,
                bytes: 0,
            };
            vm.cycles.push(record);
            const logs = await shipCycle(
                {
                    channel: watched,
                    vmId: vm.vmId,
                    grantTimeoutMs: STEP_TIMEOUT_MS,
                    capturedAt,
                    upload: (grant, log, metadata) => {
                        phase(
                            vm,
                            `${cycleId}: upload ${grant.diskId}#${grant.sequence} (${round(log.length / MiB)} MiB)`,
                        );
                        return uploadLog(grant, log, metadata);
                    },
                    onUploaded: (log) =>
                        uploads.set(`${vm.vmId}/${log.diskId}/${log.sequence}`, {
                            at: new Date(),
                            cycleId,
                            bytes: log.log.length,
                        }),
                },
                cycleId,
                vm.disks.map(({ disk, chain }, i) => ({ chain, source: disk, ranges: ranges[i]! })),
            );
            phase(vm, `${cycleId}: release`);
            for (const { disk } of vm.disks) await disk.release();
            phase(vm, `waiting for the next cycle after ${cycleId}`);
            record.shippedAt = new Date();
            record.logs = logs.length;
            record.bytes = logs.reduce((n, l) => n + l.bytes, 0);
            record.closing = logs
                .filter((l, i) => !logs.slice(i + 1).some((m) => m.diskId === l.diskId))
                .map((l) => `${vm.vmId}/${l.diskId}/${l.sequence}`);
            vm.pending.push(record);
            progress(
                `${vm.vmId}: ${cycleId} shipped in ${round((record.shippedAt.getTime() - capturedAt.getTime()) / 1000)} s ` +
                    `(${logs.length} logs, ${round(record.bytes / MiB)} MiB); ${vm.pending.length} cycle(s) waiting for a point`,
            );
        };
        const cycleLoop = async (vm: SoakVm): Promise<void> => {
            let next = started + options.copyFrequency * 1000;
            let n = 0;
            while (next < endAt && !azuriteGone) {
                await sleep(next - Date.now());
                n++;
                cycleNumber = Math.max(cycleNumber, n);
                await shipOne(vm, `cycle-${n}`);
                next += options.copyFrequency * 1000;
                if (next < Date.now()) {
                    vm.lateStarts++;
                    next = Date.now();
                }
            }
        };
        await unlessAzuriteLost(Promise.all(vms.map((vm) => cycleLoop(vm))));
        await unlessAzuriteLost(sleep(endAt - Date.now()));
        running = false;
        const windowSeconds = (Date.now() - started) / 1000;
        const statsEnd = await host.stats();
        const storageEnd = storage.counts();
        const azuriteCpuEnd = await cpuSecondsOf(azurite.pid);
        const benchCpu = process.cpuUsage(benchCpuStart);
        progress(`window over after ${round(windowSeconds)} s; the guests stop, a last cycle ships everything since`);

        // ---- drain: one last cycle of every VM, then its point, so the replicas must equal the sources ----
        for (const t of timers) clearInterval(t);
        timers.length = 0;
        const drainStarted = Date.now();
        await unlessAzuriteLost(Promise.all(vms.map((vm) => shipOne(vm, 'final'))));
        for (;;) {
            if (vms.every((vm) => vm.cycles.find((c) => c.cycleId === 'final')?.pointSeenAt)) break;
            if (Date.now() - drainStarted > DRAIN_TIMEOUT_MS) {
                progress('the last cycles did not all become recovery points in 10 minutes');
                break;
            }
            await unlessAzuriteLost(sleep(500));
        }
        const drainSeconds = (Date.now() - drainStarted) / 1000;
        watching = false;
        await watcher;

        // ---- every replica against its source ----
        progress('comparing every replica with its source (in-process and qemu-img)');
        const replicas: {
            vmId: string;
            diskId: string;
            equal: boolean;
            qemuImg: string;
            problem?: string;
            appliedLogs: number;
        }[] = [];
        let logsMerged = 0;
        let bytesMerged = 0;
        for (const vm of vms) {
            for (const { disk, chain } of vm.disks) {
                const raw = join(outDir, vm.vmId, `${disk.diskId}.raw`);
                const vhd = join(outDir, vm.vmId, `${disk.diskId}.vhd`);
                await downloadReplica(direct.blob, vm.vmId, disk.diskId, vhd);
                const verdict = await compareReplica(raw, vhd);
                const qemu = await qemuCompare(raw, vhd);
                const row = await getReplicaDisk(scope, vm.vmId, disk.diskId);
                const applied = row?.disk.sequence ?? 0;
                logsMerged += applied;
                replicas.push({
                    vmId: vm.vmId,
                    diskId: disk.diskId,
                    equal: verdict.equal,
                    qemuImg: qemu.verdict,
                    ...(verdict.problem ? { problem: verdict.problem } : {}),
                    appliedLogs: applied,
                });
                void chain;
                await rm(vhd, { force: true });
            }
            bytesMerged += vm.cycles.filter((c) => c.pointSeenAt).reduce((n, c) => n + c.bytes, 0);
        }
        const replicasIdentical = replicas.every((r) => r.equal && r.qemuImg !== 'differs');

        // ---- the numbers ----
        const windowCycles = vms.flatMap((vm) => vm.cycles.filter((c) => c.cycleId !== 'final'));
        const vmCycles = windowCycles.length;
        const rpo = sampler.report();
        const lagSeconds = (c: CycleRecord) =>
            c.shippedAt && c.pointSeenAt ? (c.pointSeenAt.getTime() - c.shippedAt.getTime()) / 1000 : undefined;
        const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
        const invocationDelta = diffInvocations(statsStart.invocations, statsEnd.invocations);
        const executions = invocationDelta.reduce((n, i) => n + i.count, 0);
        const activities = invocationDelta
            .filter((i) => i.triggerType === 'activityTrigger')
            .reduce((n, i) => n + i.count, 0);
        const orchestrations = invocationDelta
            .filter((i) => i.triggerType === 'orchestrationTrigger')
            .reduce((n, i) => n + i.count, 0);
        const mergeRuns = invocationDelta.find((i) => i.name === 'mergeReplicaLog');
        const transactions = transactionsBetween(storageStart, storageEnd);
        const perCycle = (n: number) => round(n / Math.max(1, vmCycles), 2);
        // Where a log's time goes: upload → merge start (queue delay), the merge's phases, last log → point.
        const merges = (await readAppliedMerges(join(outDir, 'host.log'))).filter((m) => {
            const u = uploads.get(m.key);
            return u !== undefined && u.cycleId !== 'final';
        });
        const mergeStartedAt = (m: { appliedAt: Date; ms: number }) => m.appliedAt.getTime() - m.ms;
        const appliedAtOf = new Map(merges.map((m) => [m.key, m.appliedAt]));
        const pointAfterLastLog = defined(
            windowCycles.map((c) => {
                if (!c.pointCreatedAt || !c.closing) return undefined;
                const times = c.closing.map((k) => appliedAtOf.get(k)?.getTime());
                if (times.some((t) => t === undefined)) return undefined;
                return (c.pointCreatedAt.getTime() - Math.max(...(times as number[]))) / 1000;
            }),
        );
        const mergedBytes = merges.reduce((n, m) => n + m.bytes, 0);
        const mergeMs = merges.reduce((n, m) => n + m.ms, 0);
        const bottleneck = {
            logsApplied: merges.length,
            queueDelaySeconds: spread(
                merges.map((m) => Math.max(0, (mergeStartedAt(m) - uploads.get(m.key)!.at.getTime()) / 1000)),
            ),
            mergeSecondsPerLog: spread(merges.map((m) => m.ms / 1000)),
            indexSecondsPerLog: spread(merges.map((m) => m.indexMs / 1000)),
            verifySecondsPerLog: spread(merges.map((m) => m.verifyMs / 1000)),
            writeSecondsPerLog: spread(merges.map((m) => m.writeMs / 1000)),
            mergeMiBPerSecondPerLog: mergeMs > 0 ? round(mergedBytes / MiB / (mergeMs / 1000), 2) : undefined,
            pointRecordedAfterLastLogSeconds: spread(pointAfterLastLog),
            ingestNeededMiBPerSecond: round((options.churn * options.vms * options.disks) / MiB, 1),
            mergedMiBPerSecond: round(mergedBytes / MiB / windowSeconds, 2),
            hostCpuSecondsPerMiBMerged:
                mergedBytes > 0
                    ? round((statsEnd.cpuSeconds - statsStart.cpuSeconds) / (mergedBytes / MiB), 3)
                    : undefined,
            azuriteCpuSecondsPerMiBMerged:
                mergedBytes > 0 && azuriteCpuStart !== undefined && azuriteCpuEnd !== undefined
                    ? round((azuriteCpuEnd - azuriteCpuStart) / (mergedBytes / MiB), 3)
                    : undefined,
        };
        const churnWritten =
            vms.flatMap((vm) => vm.disks).reduce((n, { disk }) => n + disk.writtenBytes, 0) - writtenBefore;
        const result = {
            soak: {
                options: {
                    vms: options.vms,
                    disks: options.disks,
                    diskSizeMiB: options.diskSize / MiB,
                    churnMiBPerSecond: options.churn / MiB,
                    copyFrequencySeconds: options.copyFrequency,
                    minutes: options.minutes,
                    durable: options.durable,
                    azurite: options.azuriteInMemory ? 'in memory' : 'on disk',
                },
                load: await load(),
                windowSeconds: round(windowSeconds),
                rpoSeconds: { ...rpo.all, perVm: rpo.perVm, samples: rpo.samples },
                replicasIdentical,
                replicas,
                cycles: {
                    vmCycles,
                    withPoint: windowCycles.filter((c) => c.pointSeenAt).length,
                    withoutPoint: windowCycles.filter((c) => c.noPoint).length,
                    lateStarts: vms.reduce((n, vm) => n + vm.lateStarts, 0),
                    shipSeconds: spread(
                        defined(
                            windowCycles.map((c) =>
                                c.shippedAt ? (c.shippedAt.getTime() - c.capturedAt.getTime()) / 1000 : undefined,
                            ),
                        ),
                    ),
                    mergeLagSeconds: spread(defined(windowCycles.map(lagSeconds))),
                    pointRecordedAfterShippedSeconds: spread(
                        defined(
                            windowCycles.map((c) =>
                                c.shippedAt && c.pointCreatedAt
                                    ? (c.pointCreatedAt.getTime() - c.shippedAt.getTime()) / 1000
                                    : undefined,
                            ),
                        ),
                    ),
                    drainSeconds: round(drainSeconds),
                },
                guest: {
                    writtenMiB: round(churnWritten / MiB),
                    achievedMiBPerSecondPerDisk: round(
                        churnWritten / MiB / windowSeconds / (options.vms * options.disks),
                        2,
                    ),
                    copyOnWriteBlocks: vms.flatMap((vm) => vm.disks).reduce((n, { disk }) => n + disk.keptBlocks, 0),
                },
                merged: {
                    logs: logsMerged,
                    bytes: bytesMerged,
                    mergeExecutions: mergeRuns?.count ?? 0,
                    mergeSecondsPerExecution:
                        mergeRuns && mergeRuns.count > 0
                            ? round(mergeRuns.totalMs / mergeRuns.count / 1000, 2)
                            : undefined,
                    mergeSecondsMax: mergeRuns ? round(mergeRuns.maxMs / 1000, 2) : undefined,
                },
                host: {
                    pid: host.pid,
                    cpuSeconds: round(statsEnd.cpuSeconds - statsStart.cpuSeconds),
                    cpuShareOfOneCore: round((statsEnd.cpuSeconds - statsStart.cpuSeconds) / windowSeconds, 2),
                    peakRssMiB: round(Math.max(hostPeakRss, statsEnd.rssBytes) / MiB),
                    maxRssMiB: round(statsEnd.peakRssBytes / MiB),
                },
                bench: { cpuSeconds: round((benchCpu.user + benchCpu.system) / 1e6) },
                azurite: {
                    pid: azurite.pid,
                    peakRssMiB: round(azuritePeakRss / MiB),
                    cpuSeconds:
                        azuriteCpuStart !== undefined && azuriteCpuEnd !== undefined
                            ? round(azuriteCpuEnd - azuriteCpuStart)
                            : undefined,
                },
                memory,
                perVmCycle: {
                    executions: round(executions / vmCycles, 2),
                    activityExecutions: round(activities / vmCycles, 2),
                    orchestratorEpisodes: round(orchestrations / vmCycles, 2),
                    byFunction: Object.fromEntries(
                        invocationDelta.map((i) => [
                            i.name,
                            {
                                count: round(i.count / vmCycles, 2),
                                msPerExecution: round(i.totalMs / Math.max(1, i.count)),
                                failed: i.failed,
                            },
                        ]),
                    ),
                    storageTransactions: {
                        total: perCycle(transactions.total),
                        ...Object.fromEntries(Object.entries(transactions.groups).map(([k, v]) => [k, perCycle(v)])),
                        byKind: Object.fromEntries(
                            Object.entries(transactions.byKind).map(([k, v]) => [k, perCycle(v)]),
                        ),
                    },
                },
                bottleneck,
                costUsdPerVmMonth: null as unknown,
            },
        };
        progress(
            JSON.stringify({
                rpoSeconds: result.soak.rpoSeconds,
                replicasIdentical,
                cycles: result.soak.cycles,
                host: result.soak.host,
            }),
        );
        return result;
    } finally {
        for (const t of timers) clearInterval(t);
        const bounded = (work: Promise<unknown>) => Promise.race([work.catch(() => undefined), sleep(60_000)]);
        for (const vm of vms) for (const { disk } of vm.disks) await bounded(disk.close());
        if (channel) await bounded(channel.stop());
        await host?.stop().catch(() => undefined);
        await storage?.stop().catch(() => undefined);
        await azurite?.stop().catch(() => undefined);
        if (!options.out) await rm(outDir, { recursive: true, force: true }).catch(() => undefined);
    }
}

/** Executions between two readings of the host's counters. */
export function diffInvocations(
    before: readonly InvocationCount[],
    after: readonly InvocationCount[],
): InvocationCount[] {
    const earlier = new Map(before.map((c) => [c.name, c]));
    return after
        .map((c) => {
            const b = earlier.get(c.name);
            return {
                ...c,
                count: c.count - (b?.count ?? 0),
                failed: c.failed - (b?.failed ?? 0),
                totalMs: c.totalMs - (b?.totalMs ?? 0),
            };
        })
        .filter((c) => c.count > 0);
}
