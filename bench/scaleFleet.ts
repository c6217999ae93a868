import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { functionRegistry, type DurableEngineName, type RegisteredFunction } from '../packages/functions-local/src';
import { runSimulation, type SimulationPhase } from '../tools/simulator/simulation';
import { PeakRss, type ProcessTreeSample } from './support/processTree';

/** What the `scale` benchmark asks of one fleet (passed as JSON in BENCH_SCALE_FLEET). */
export interface FleetSpec {
    vms: number;
    disks: number;
    diskSize: number;
    churn: number;
    cycles: number;
    durable: DurableEngineName;
    pollIntervalMs: number;
    stepTimeoutMs: number;
    /** Azurite's data on disk in the fleet's folder (`--azurite-on-disk`), not in memory. */
    azuriteOnDisk?: boolean;
}

/** Executions per trigger kind and per function name. */
type Counts = Record<string, number>;

interface Mark {
    at: number;
    tree: ProcessTreeSample;
    byKind: Counts;
    byName: Counts;
}

/** Counts every execution of every registered function: the handler is wrapped as it is registered. */
function countExecutions(): { byKind: Counts; byName: Counts } {
    const byKind: Counts = {};
    const byName: Counts = {};
    const functions = functionRegistry().functions;
    const set = functions.set.bind(functions);
    functions.set = (name: string, fn: RegisteredFunction) => {
        const kind = fn.trigger.type.replace(/Trigger$/, '');
        const handler = fn.handler;
        return set(name, {
            ...fn,
            handler: (...args: unknown[]) => {
                byKind[kind] = (byKind[kind] ?? 0) + 1;
                byName[name] = (byName[name] ?? 0) + 1;
                return handler(...args);
            },
        });
    };
    return { byKind, byName };
}

function diff(after: Counts, before: Counts): Counts {
    const out: Counts = {};
    for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
    return out;
}

const MiB = 1024 * 1024;
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * One fleet of the `scale` benchmark, in a process of its own (fresh Azurite, fresh heap): the simulator's site
 * with `vms` VMs through initial replication, then `cycles` delta cycles with every VM in step (the cycles start
 * once every VM is Protected). Prints one JSON line: the phases' wall time, CPU of this process (local host and
 * simulated provider) and of its children (Azurite, the Durable engine), executions, peak RSS.
 */
async function main(): Promise<void> {
    const spec = JSON.parse(process.env.BENCH_SCALE_FLEET ?? '') as FleetSpec;
    const counts = countExecutions();
    const rss = new PeakRss(500);
    const marks = new Map<SimulationPhase, Mark>();
    let baselineRss = 0;
    const mark = (phase: SimulationPhase): void => {
        const tree = rss.sample();
        if (phase === 'initialReplication') baselineRss = tree.selfRssBytes + tree.childrenRssBytes;
        if (phase === 'cycles') rss.reset();
        marks.set(phase, { at: Date.now(), tree, byKind: { ...counts.byKind }, byName: { ...counts.byName } });
    };
    const outDir = await mkdtemp(join(tmpdir(), 'hvr-bench-scale-'));
    let keep = false;
    try {
        const result = await runSimulation({
            outDir,
            seed: 1,
            vms: spec.vms,
            disks: spec.disks,
            diskSize: spec.diskSize,
            cycles: spec.cycles,
            churn: spec.churn,
            faults: new Set(),
            durable: spec.durable,
            appRoot: resolve(__dirname, '..', '..'),
            stepTimeoutMs: spec.stepTimeoutMs,
            pollIntervalMs: spec.pollIntervalMs,
            ...(spec.azuriteOnDisk ? { azuriteLocation: join(outDir, 'azurite') } : {}),
            onPhase: mark,
            progress: (line) => {
                if (/FAILED|warning|step not completed|Protected$|cycle \d+ applied/.test(line)) {
                    process.stderr.write(`scale ${spec.vms}: ${line}\n`);
                }
            },
        });
        const start = marks.get('initialReplication');
        const cycles = marks.get('cycles');
        const done = marks.get('done');
        const peakCycles = { self: rss.self, children: rss.children, total: rss.total };
        rss.stop();
        const vmCycles = spec.vms * spec.cycles;
        // A failed fleet keeps its folder (host.log says why); a good one leaves nothing behind.
        keep = !result.ok;
        if (keep) process.stderr.write(`scale ${spec.vms}: kept ${outDir} (host.log)\n`);
        const phase = (a: Mark | undefined, b: Mark | undefined) =>
            a && b
                ? {
                      seconds: (b.at - a.at) / 1000,
                      selfCpuMs: b.tree.selfCpuMs - a.tree.selfCpuMs,
                      childrenCpuMs: b.tree.childrenCpuMs - a.tree.childrenCpuMs,
                      byKind: diff(b.byKind, a.byKind),
                      byName: diff(b.byName, a.byName),
                  }
                : undefined;
        const initial = phase(start, cycles);
        const run = phase(cycles, done);
        const perVmCycle = (x: number): number => round(x / vmCycles, 3);
        process.stdout.write(
            JSON.stringify({
                vms: spec.vms,
                durable: spec.durable,
                ok: result.ok,
                ...(result.failure ? { failure: result.failure.message.slice(0, 500) } : {}),
                replicasIdentical: result.replicas.length > 0 && result.replicas.every((r) => r.equal),
                initialReplicationSeconds: initial ? round(initial.seconds, 1) : undefined,
                initialCpuMsPerVm: initial
                    ? round((initial.selfCpuMs + initial.childrenCpuMs) / spec.vms, 1)
                    : undefined,
                ...(run
                    ? {
                          cycleWallSeconds: round(run.seconds / spec.cycles, 2),
                          cpuMsPerVmCycle: {
                              total: perVmCycle(run.selfCpuMs + run.childrenCpuMs),
                              host: perVmCycle(run.selfCpuMs),
                              children: perVmCycle(run.childrenCpuMs),
                          },
                          executionsPerVmCycle: Object.fromEntries(
                              Object.entries(run.byKind).map(([k, v]) => [k, perVmCycle(v)]),
                          ),
                          executionsByFunctionPerVmCycle: Object.fromEntries(
                              Object.entries(run.byName).map(([k, v]) => [k, perVmCycle(v)]),
                          ),
                      }
                    : {}),
                peakRssMiB: {
                    host: round(peakCycles.self / MiB, 1),
                    children: round(peakCycles.children / MiB, 1),
                    total: round(peakCycles.total / MiB, 1),
                },
                baselineRssMiB: round(baselineRss / MiB, 1),
                rssPerVmMiB: round((peakCycles.total - baselineRss) / MiB / spec.vms, 3),
            }) + '\n',
        );
    } finally {
        if (!keep) await rm(outDir, { recursive: true, force: true });
    }
}

main().catch((err: unknown) => {
    process.stderr.write(`scale fleet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
});
