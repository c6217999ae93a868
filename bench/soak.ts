import { ChildProcess, fork } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
import { ProviderChannel, shipCycle, shipInitialReplication, SiteCredentials } from '../packages/provider-kit/src';
import { DiskChain } from '../packages/provider-kit/src';
import { ManagementClient } from '../tools/simulator/managementClient';
import { qemuCompare } from '../tools/simulator/qemuCompare';
import { SeededRandom } from '../tools/simulator/random';
import { compareReplica, downloadReplica } from '../tools/simulator/replicaCheck';
import { simulatedPolicy } from '../tools/simulator/simulation';
import { parseSoakArgs } from './soak/args';
import { PacedDisk } from './soak/pacedDisk';
import { RpoSampler, spread } from './soak/stats';
import { startStorageCounting, StorageCounting } from './soak/storageCounting';

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
}

interface SoakVm {
    vmId: string;
    disks: { disk: PacedDisk; chain: DiskChain }[];
    cycles: CycleRecord[];
    /** Cycles shipped whose point has not been seen yet. */
    pending: CycleRecord[];
    /** Cycles that had to start late because the previous one was still shipping. */
    lateStarts: number;
}

const MiB = 1024 * 1024;
const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

export async function bench(argv: readonly string[] = []): Promise<Record<string, unknown>> {
    const options = parseSoakArgs(argv);
    const outDir = resolve(options.out ?? (await mkdtemp(join(tmpdir(), 'hvr-bench-soak-'))));
    await mkdir(outDir, { recursive: true });
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
    try {
        const azuriteDir = join(outDir, 'azurite');
        if (!options.azuriteInMemory) await mkdir(azuriteDir, { recursive: true });
        azurite = await startAzurite(options.azuriteInMemory ? {} : { location: azuriteDir });
        storage = await startStorageCounting(azurite.connectionString);
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
            vms.push({ vmId, disks, cycles: [], pending: [], lateStarts: 0 });
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
                        owed += (options.churn * (now - last)) / 1000;
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
            while (watching) {
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
        timers.push(setInterval(() => void sampleMemory(), MEMORY_EVERY_MS));

        let cycleNumber = 0;
        const shipOne = async (vm: SoakVm, cycleId: string): Promise<void> => {
            const capturedAt = new Date();
            const ranges = await Promise.all(vm.disks.map(({ disk }) => disk.capture()));
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
                { channel: provider, vmId: vm.vmId, grantTimeoutMs: STEP_TIMEOUT_MS, capturedAt },
                cycleId,
                vm.disks.map(({ disk, chain }, i) => ({ chain, source: disk, ranges: ranges[i]! })),
            );
            for (const { disk } of vm.disks) await disk.release();
            record.shippedAt = new Date();
            record.logs = logs.length;
            record.bytes = logs.reduce((n, l) => n + l.bytes, 0);
            vm.pending.push(record);
        };
        const cycleLoop = async (vm: SoakVm): Promise<void> => {
            let next = started + options.copyFrequency * 1000;
            let n = 0;
            while (next < endAt) {
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
        await Promise.all(vms.map((vm) => cycleLoop(vm)));
        await sleep(endAt - Date.now());
        running = false;
        const windowSeconds = (Date.now() - started) / 1000;
        const statsEnd = await host.stats();
        const storageEnd = storage.counts();
        const benchCpu = process.cpuUsage(benchCpuStart);
        progress(`window over after ${round(windowSeconds)} s; the guests stop, a last cycle ships everything since`);

        // ---- drain: one last cycle of every VM, then its point, so the replicas must equal the sources ----
        for (const t of timers) clearInterval(t);
        timers.length = 0;
        const drainStarted = Date.now();
        await Promise.all(vms.map((vm) => shipOne(vm, 'final')));
        for (;;) {
            if (vms.every((vm) => vm.cycles.find((c) => c.cycleId === 'final')?.pointSeenAt)) break;
            if (Date.now() - drainStarted > DRAIN_TIMEOUT_MS) {
                progress('the last cycles did not all become recovery points in 10 minutes');
                break;
            }
            await sleep(500);
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
        const merges = invocationDelta.find((i) => i.name === 'mergeReplicaLog');
        const storageDelta = storageStart && storageEnd ? diffCounts(storageStart, storageEnd) : undefined;
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
                    mergeExecutions: merges?.count ?? 0,
                    mergeSecondsPerExecution:
                        merges && merges.count > 0 ? round(merges.totalMs / merges.count / 1000, 2) : undefined,
                    mergeSecondsMax: merges ? round(merges.maxMs / 1000, 2) : undefined,
                },
                host: {
                    pid: host.pid,
                    cpuSeconds: round(statsEnd.cpuSeconds - statsStart.cpuSeconds),
                    cpuShareOfOneCore: round((statsEnd.cpuSeconds - statsStart.cpuSeconds) / windowSeconds, 2),
                    peakRssMiB: round(Math.max(hostPeakRss, statsEnd.rssBytes) / MiB),
                    maxRssMiB: round(statsEnd.peakRssBytes / MiB),
                },
                bench: { cpuSeconds: round((benchCpu.user + benchCpu.system) / 1e6) },
                azurite: { peakRssMiB: round(azuritePeakRss / MiB) },
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
                    storageTransactions: storageDelta
                        ? Object.fromEntries(Object.entries(storageDelta).map(([k, v]) => [k, round(v / vmCycles, 2)]))
                        : null,
                },
                storageTransactionsNote: storage.note,
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
        for (const vm of vms) for (const { disk } of vm.disks) await disk.close().catch(() => undefined);
        await channel?.stop().catch(() => undefined);
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

function diffCounts(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
    return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}
