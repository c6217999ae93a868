import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { appModules, functionRegistry, installFunctionsCore, startAzurite } from '../packages/functions-local/src';
import { REPLICA_LOGS_CONTAINER } from '../shared/replica/logBlob';
import { SITES_TABLE } from '../shared/state/sites';
import { runSimulation } from '../tools/simulator/simulation';
import { monthlyCostPerVm, type CostEstimate, type PerVmCycleCounts } from './cost/model';
import { startStorageCounter, sumStorageCounts, type StorageCounts } from './support/storageCounter';
import type { StorageOpKind } from './support/storageOps';

/**
 * `cost` benchmark: protected VMs on the real Durable engine (dtfx), every storage call of the app and of the
 * engine through the counting proxy (bench/support/storageCounter.ts), function executions and busy time counted
 * at the handlers. Two windows: the delta cycles (from the moment every VM is Protected to the moment every VM's
 * last cycle is a recovery point) give the per-VM-cycle counts, with the idle rate × the window's length taken
 * out; an idle window after the run (the provider still beating every 5 s, no cycle) gives the per-app counts per
 * hour, with its executions by function and its requests by queue/table/container, so idle traffic can be named.
 * Then the cost model for 30 s, 5 min and 15 min copy frequencies. BENCH_COST_VMS, BENCH_COST_CYCLES,
 * BENCH_COST_IDLE_SECONDS, BENCH_COST_FLEET change the run.
 *
 * What the local run cannot count is estimated, and said so in the output: Service Bus operations (the provider
 * channel's messages per cycle), Event Grid operations (one publish and one delivery per uploaded log) and
 * Application Insights bytes (a request record per execution and a trace per log line).
 */

const VMS = Number(process.env.BENCH_COST_VMS ?? 2);
const DISKS = 2;
const CYCLES = Number(process.env.BENCH_COST_CYCLES ?? 4);
const IDLE_SECONDS = Number(process.env.BENCH_COST_IDLE_SECONDS ?? 60);
const FLEET = Number(process.env.BENCH_COST_FLEET ?? 100);
/** The local engine polls its queues at most every second; Azure's default (host.json sets none) is 30 s. */
const LOCAL_MAX_POLL_SECONDS = 1;
const AZURE_MAX_POLL_SECONDS = 30;

/** Estimates for what the local run does not count (per VM per cycle unless named). */
const ESTIMATES = {
    /** RequestGrants, its grants event, the cycle report: send, receive and complete each. */
    serviceBusOperationsPerVmCycle: 9,
    /** The site heartbeat every 5 s: send, receive, complete. */
    serviceBusOperationsPerSiteHour: 3 * 720,
    /**
     * The site heartbeat every 5 s starts the providerCommands function once each in Azure; the local host's
     * receivers run the command handler outside the function registry, so the meter does not see them (their
     * storage calls are counted).
     */
    providerCommandExecutionsPerSiteHour: 720,
    /** One BlobCreated per uploaded log: the publish and one delivery. */
    eventGridOperationsPerLog: 2,
    /** An Application Insights request record per execution, a trace record per log line (bytes each). */
    appInsightsBytesPerExecution: 1000,
    appInsightsBytesPerLogLine: 600,
};

function progress(message: string): void {
    process.stderr.write(`bench cost: ${message}\n`);
}

/**
 * Executions and the time at least one runs (what Flex bills one instance for), counted at the handlers; HTTP
 * executions (the simulator polling the API) only by trigger and function.
 */
class ExecutionMeter {
    executions = 0;
    byTrigger: Record<string, number> = {};
    /** By `trigger:function`: which functions the executions are. */
    byFunction: Record<string, number> = {};
    busyMs = 0;
    private active = 0;
    private since = 0;

    wrap(): void {
        for (const fn of functionRegistry().functions.values()) {
            const inner = fn.handler;
            const trigger = fn.trigger.type;
            const name = `${trigger}:${fn.name}`;
            fn.handler = async (...args: unknown[]) => {
                this.byTrigger[trigger] = (this.byTrigger[trigger] ?? 0) + 1;
                this.byFunction[name] = (this.byFunction[name] ?? 0) + 1;
                // The API's HTTP calls are the simulator asking for status, not pipeline work: shown, not priced.
                if (trigger === 'httpTrigger') return inner(...args);
                this.executions++;
                if (this.active++ === 0) this.since = performance.now();
                try {
                    return await inner(...args);
                } finally {
                    if (--this.active === 0) this.busyMs += performance.now() - this.since;
                }
            };
        }
    }

    snapshot(): {
        executions: number;
        busyMs: number;
        byTrigger: Record<string, number>;
        byFunction: Record<string, number>;
    } {
        const busy = this.busyMs + (this.active > 0 ? performance.now() - this.since : 0);
        return {
            executions: this.executions,
            busyMs: busy,
            byTrigger: { ...this.byTrigger },
            byFunction: { ...this.byFunction },
        };
    }
}

interface Mark {
    at: number;
    storage: StorageCounts;
    exec: ReturnType<ExecutionMeter['snapshot']>;
    logLines: number;
}

function requestsOf(c: StorageCounts): Partial<Record<StorageOpKind, number>> {
    return Object.fromEntries(Object.entries(c.byKind).map(([k, v]) => [k, v.requests]));
}

/** b − a by kind, never below zero. */
function minus(
    b: Partial<Record<StorageOpKind, number>>,
    a: Partial<Record<StorageOpKind, number>>,
): Partial<Record<StorageOpKind, number>> {
    const out: Partial<Record<StorageOpKind, number>> = {};
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)]) as Set<StorageOpKind>) {
        out[k] = Math.max(0, (b[k] ?? 0) - (a[k] ?? 0));
    }
    return out;
}

function scale(c: Partial<Record<StorageOpKind, number>>, f: number): Partial<Record<StorageOpKind, number>> {
    return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v * f]));
}

function round(c: Partial<Record<string, number>>, digits = 2): Record<string, number> {
    const m = 10 ** digits;
    return Object.fromEntries(
        Object.entries(c)
            .filter(([, v]) => (v ?? 0) > 0)
            .sort(([, x], [, y]) => (y ?? 0) - (x ?? 0))
            .map(([k, v]) => [k, Math.round((v ?? 0) * m) / m]),
    );
}

export async function bench(): Promise<Record<string, unknown>> {
    /** Requests by caller, kind and queue/table/container while the idle window runs: what keeps the engine busy. */
    let idleTally: Record<string, number> | undefined;
    const outDir = await mkdtemp(join(tmpdir(), 'hvr-bench-cost-'));
    const azurite = await startAzurite();
    // What only the local host does, kept out: its Event Grid emulation lists the logs container (no prefix) and
    // keeps receipts in a table of its own; in Azure, Event Grid does neither on the account.
    const counter = await startStorageCounter(azurite, {
        callers: ['app', 'durable'],
        setAside: (r) => {
            if (idleTally) {
                const key = `${r.caller} ${r.kind} ${resourceOf(r.url)}`;
                idleTally[key] = (idleTally[key] ?? 0) + 1;
            }
            if (
                r.kind === 'blob.listBlobs' &&
                r.url.includes(`/${REPLICA_LOGS_CONTAINER}?`) &&
                !/[?&]prefix=/.test(r.url)
            ) {
                return 'local Event Grid scan';
            }
            if (r.service === 'table' && /\/hostBlobReceipts\b/.test(r.url)) return 'local Event Grid receipts';
            // The local provider bus looks for new sites to give them a subscription (infra creates it in Azure):
            // the whole Sites list, four times a second.
            if (
                r.kind === 'table.query' &&
                r.url.includes(`/${SITES_TABLE}()`) &&
                !/RowKey/.test(decodeURIComponent(r.url))
            ) {
                return 'local provider bus site scan';
            }
            return undefined;
        },
    });
    const meter = new ExecutionMeter();
    const appRoot = resolve(__dirname, '..', '..');
    installFunctionsCore(functionRegistry());
    for (const file of appModules(appRoot)) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        require(file);
    }
    meter.wrap();

    let logLines = 0;
    const protectedVms = new Set<string>();
    const finishedVms = new Set<string>();
    let start: Mark | undefined;
    let end: Mark | undefined;
    let idle: (Mark & { seconds: number }) | undefined;
    let idleByFunction: Record<string, number> = {};
    let idleByResource: Record<string, number> = {};
    const mark = (): Mark => ({
        at: performance.now(),
        storage: counter.counts(),
        exec: meter.snapshot(),
        logLines,
    });
    const perCaller: Record<string, { start?: StorageCounts; end?: StorageCounts; idle?: StorageCounts }> = {
        app: {},
        durable: {},
    };
    try {
        progress(`${VMS} VMs × ${DISKS} disks, ${CYCLES} cycles, on the real Durable engine (dtfx)`);
        const result = await runSimulation({
            outDir,
            seed: 21,
            vms: VMS,
            disks: DISKS,
            diskSize: 16 * 1024 * 1024,
            cycles: CYCLES,
            churn: 1024 * 1024,
            faults: new Set(),
            appRoot,
            durable: 'dtfx',
            stepTimeoutMs: 180_000,
            hostStorage: {
                azureWebJobsStorage: counter.connectionString('durable'),
                replicaStorage: counter.connectionString('app'),
            },
            progress: (line) => {
                logLines++;
                progress(line);
                const prot = /\] (\S+): Protected$/.exec(line);
                if (prot) {
                    protectedVms.add(prot[1]!);
                    if (protectedVms.size === VMS && !start) {
                        start = mark();
                        for (const c of counter.callers) perCaller[c]!.start = counter.counts(c);
                    }
                }
                const done = new RegExp(`\\] (\\S+): cycle ${CYCLES} applied`).exec(line);
                if (done) {
                    finishedVms.add(done[1]!);
                    if (finishedVms.size === VMS && !end) {
                        end = mark();
                        for (const c of counter.callers) perCaller[c]!.end = counter.counts(c);
                    }
                }
            },
            beforeStop: async () => {
                progress(`idle for ${IDLE_SECONDS} s with ${VMS} protected VMs`);
                const before = mark();
                const callersBefore = Object.fromEntries(counter.callers.map((c) => [c, counter.counts(c)]));
                idleTally = {};
                await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
                idleByResource = idleTally;
                idleTally = undefined;
                const after = mark();
                idleByFunction = countsSince(before.exec.byFunction, after.exec.byFunction);
                idle = {
                    ...after,
                    seconds: (after.at - before.at) / 1000,
                    storage: diffCounts(after.storage, before.storage),
                    exec: {
                        executions: after.exec.executions - before.exec.executions,
                        busyMs: after.exec.busyMs - before.exec.busyMs,
                        byTrigger: {},
                        byFunction: idleByFunction,
                    },
                    logLines: after.logLines - before.logLines,
                };
                for (const c of counter.callers) perCaller[c]!.idle = diffCounts(counter.counts(c), callersBefore[c]!);
            },
        });
        if (!start || !end || !idle) {
            throw new Error(
                `the simulation did not complete: ${result.failure ? `${result.failure.step}: ${result.failure.message}` : 'no failure named'}`,
            );
        }
        if (!result.ok) {
            progress(
                `warning: the simulation failed after the windows were measured: ${result.failure?.message ?? '?'}`,
            );
        }
        return { simulationOk: result.ok, ...report(start, end, idle, perCaller, idleByFunction, idleByResource) };
    } finally {
        await counter.close();
        await azurite.stop();
        await rm(outDir, { recursive: true, force: true });
    }
}

/** The queue, table or container a request names (the path's segment after the account), without keys. */
function resourceOf(url: string): string {
    const segment = url.split('?')[0]!.split('/')[2] ?? '';
    return segment.replace(/\(.*$/, '');
}

/** after − before by key, the keys that grew, most first. */
function countsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
    return Object.fromEntries(
        Object.entries(after)
            .map(([k, n]) => [k, n - (before[k] ?? 0)] as const)
            .filter(([, n]) => n > 0)
            .sort(([, x], [, y]) => y - x),
    );
}

function diffCounts(after: StorageCounts, before: StorageCounts): StorageCounts {
    const out = sumStorageCounts([after]);
    for (const [k, v] of Object.entries(before.byKind) as [
        StorageOpKind,
        NonNullable<StorageCounts['byKind'][StorageOpKind]>,
    ][]) {
        const o = out.byKind[k]!;
        o.requests -= v.requests;
        o.operations -= v.operations;
        o.failed -= v.failed;
        o.bytesIn -= v.bytesIn;
        o.bytesOut -= v.bytesOut;
    }
    out.requests -= before.requests;
    out.operations -= before.operations;
    out.bytesIn -= before.bytesIn;
    out.bytesOut -= before.bytesOut;
    out.failed -= before.failed;
    return out;
}

function report(
    start: Mark,
    end: Mark,
    idle: Mark & { seconds: number },
    perCaller: Record<string, { start?: StorageCounts; end?: StorageCounts; idle?: StorageCounts }>,
    idleByFunction: Record<string, number>,
    idleByResource: Record<string, number>,
): Record<string, unknown> {
    const windowSeconds = (end.at - start.at) / 1000;
    const vmCycles = VMS * CYCLES;
    const idleHours = idle.seconds / 3600;

    // Idle per hour, by caller; the engine's queue polls re-scaled from the local 1 s bound to Azure's 30 s.
    const idlePerHour: Record<string, Partial<Record<StorageOpKind, number>>> = {};
    for (const [caller, c] of Object.entries(perCaller))
        idlePerHour[caller] = scale(requestsOf(c.idle!), 1 / idleHours);
    const durableIdle = { ...idlePerHour.durable! };
    const localPolls = durableIdle['queue.getMessages'] ?? 0;
    const azureDurableIdle = {
        ...durableIdle,
        'queue.getMessages': (localPolls * LOCAL_MAX_POLL_SECONDS) / AZURE_MAX_POLL_SECONDS,
    };

    // Per VM-cycle: the window's counts less the idle rate over the window's length (what would have happened
    // anyway), by caller; the engine's share is kept apart so its cost is visible.
    const perVmCycleByCaller: Record<string, Partial<Record<StorageOpKind, number>>> = {};
    for (const [caller, c] of Object.entries(perCaller)) {
        const window = minus(requestsOf(c.end!), requestsOf(c.start!));
        const idleInWindow = scale(idlePerHour[caller]!, windowSeconds / 3600);
        perVmCycleByCaller[caller] = scale(minus(window, idleInWindow), 1 / vmCycles);
    }
    const storagePerVmCycle: Partial<Record<StorageOpKind, number>> = {};
    for (const byKind of Object.values(perVmCycleByCaller)) {
        for (const [k, v] of Object.entries(byKind) as [StorageOpKind, number][]) {
            storagePerVmCycle[k] = (storagePerVmCycle[k] ?? 0) + v;
        }
    }
    const idleExecPerHour = idle.exec.executions / idleHours;
    const idleBusyPerHour = idle.exec.busyMs / 1000 / idleHours;
    const execs = Math.max(0, end.exec.executions - start.exec.executions - (idleExecPerHour * windowSeconds) / 3600);
    const busy = Math.max(0, (end.exec.busyMs - start.exec.busyMs) / 1000 - (idleBusyPerHour * windowSeconds) / 3600);
    const execsPerVmCycle = execs / vmCycles;
    const busyPerVmCycle = busy / vmCycles;
    const windowLogLines = end.logLines - start.logLines;

    const perVmCycle: PerVmCycleCounts = {
        storageRequests: storagePerVmCycle,
        functionExecutions: execsPerVmCycle,
        functionBusySeconds: busyPerVmCycle,
        serviceBusOperations: ESTIMATES.serviceBusOperationsPerVmCycle,
        eventGridOperations: ESTIMATES.eventGridOperationsPerLog * DISKS,
        appInsightsBytes:
            execsPerVmCycle * ESTIMATES.appInsightsBytesPerExecution +
            (windowLogLines / vmCycles) * ESTIMATES.appInsightsBytesPerLogLine,
    };
    const perAppStorage: Partial<Record<StorageOpKind, number>> = { ...azureDurableIdle };
    for (const [k, v] of Object.entries(idlePerHour.app!) as [StorageOpKind, number][]) {
        perAppStorage[k] = (perAppStorage[k] ?? 0) + v;
    }
    const perAppHour = {
        storageRequests: perAppStorage,
        functionExecutions: idleExecPerHour + ESTIMATES.providerCommandExecutionsPerSiteHour,
        functionBusySeconds: idleBusyPerHour,
        serviceBusOperations: ESTIMATES.serviceBusOperationsPerSiteHour,
        appInsightsBytes: (idle.logLines / idleHours) * ESTIMATES.appInsightsBytesPerLogLine,
    };
    const estimates: Record<string, CostEstimate> = {};
    for (const f of [30, 300, 900]) {
        estimates[String(f)] = monthlyCostPerVm({
            perVmCycle,
            perAppHour,
            copyFrequencySeconds: f,
            fleetSize: FLEET,
        });
    }
    const at300 = estimates['300']!;
    for (const f of ['30', '300', '900']) {
        const e = estimates[f]!;
        progress(`copy frequency ${f} s: $${e.totalUsdPerVmMonth.toFixed(3)} per VM per month (fleet ${FLEET})`);
        for (const i of e.items.slice(0, 6)) progress(`  ${i.item}: $${i.usdPerVmMonth.toFixed(4)} (${i.basis})`);
    }
    const round4 = (n: number): number => Math.round(n * 1e4) / 1e4;
    return {
        bench: 'cost',
        engine: 'dtfx',
        vms: VMS,
        disksPerVm: DISKS,
        cycles: CYCLES,
        fleetSize: FLEET,
        cycleWindowSeconds: Math.round(windowSeconds * 10) / 10,
        idleSeconds: Math.round(idle.seconds),
        perVmCycle: {
            storageByCaller: Object.fromEntries(Object.entries(perVmCycleByCaller).map(([c, v]) => [c, round(v)])),
            functionExecutions: round4(execsPerVmCycle),
            functionBusySeconds: round4(busyPerVmCycle),
            executionsByTrigger: Object.fromEntries(
                Object.entries(end.exec.byTrigger).map(([t, n]) => [t, n - (start.exec.byTrigger[t] ?? 0)]),
            ),
        },
        idlePerHour: {
            app: round(idlePerHour.app!),
            durableLocal: round(durableIdle),
            durableAtAzureDefaultPolling: round(azureDurableIdle),
            functionExecutions: Math.round(idleExecPerHour),
            executionsByFunction: Object.fromEntries(
                Object.entries(idleByFunction).map(([f, n]) => [f, Math.round(n / idleHours)]),
            ),
            requestsByResource: Object.fromEntries(
                Object.entries(idleByResource)
                    .sort(([, x], [, y]) => y - x)
                    .slice(0, 25)
                    .map(([r, n]) => [r, Math.round(n / idleHours)]),
            ),
        },
        setAside: setAsideByCaller(perCaller),
        estimated: ESTIMATES,
        model: Object.fromEntries(
            Object.entries(estimates).map(([f, e]) => [
                f,
                {
                    total: round4(e.totalUsdPerVmMonth),
                    items: e.items.map((i) => ({ [i.item]: round4(i.usdPerVmMonth) })),
                },
            ]),
        ),
        largestAt300: at300.largest.map((i) => ({
            item: i.item,
            usdPerVmMonth: round4(i.usdPerVmMonth),
            basis: i.basis,
        })),
        prices: at300.prices,
        costUsdPerVmMonth: Object.fromEntries(
            Object.entries(estimates).map(([f, e]) => [f, round4(e.totalUsdPerVmMonth)]),
        ),
    };
}

function setAsideByCaller(perCaller: Record<string, { end?: StorageCounts }>): Record<string, Record<string, number>> {
    return Object.fromEntries(
        Object.entries(perCaller).map(([c, v]) => [
            c,
            Object.fromEntries(Object.entries(v.end?.setAside ?? {}).map(([n, k]) => [n, k.requests])),
        ]),
    );
}
