import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../shared/byteSize';
import { parseDurableEngine } from '../packages/functions-local/src';
import type { FleetSpec } from './scaleFleet';

/**
 * `npm run bench -- scale [--vms 25,50,100,200] [--cycles 10] [--disks 2] [--disk-size 4M] [--churn 64K]
 * [--durable embedded|dtfx]`: one simulated site per fleet size on the local host, each fleet in a fresh process
 * (its own Azurite), through initial replication and then the cycles with every VM in step. Per fleet: initial
 * replication time, wall time per cycle, CPU per VM-cycle, executions per VM-cycle, peak RSS and RSS per VM;
 * then how the per-VM-cycle cost at the largest fleet compares with the smallest (`growth`). docs/benchmarks.md.
 */

function log(message: string): void {
    process.stderr.write(`scale bench: ${message}\n`);
}

type FleetResult = Record<string, unknown> & {
    vms: number;
    ok: boolean;
    cpuMsPerVmCycle?: { total: number };
    cycleWallSeconds?: number;
    rssPerVmMiB?: number;
    load?: number[];
};

function runFleet(spec: FleetSpec): Promise<FleetResult> {
    return new Promise((resolvePromise, reject) => {
        const child = spawn(process.execPath, [join(__dirname, 'scaleFleet.js')], {
            env: { ...process.env, BENCH_SCALE_FLEET: JSON.stringify(spec) },
            stdio: ['ignore', 'pipe', 'inherit'],
        });
        let stdout = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.on('error', reject);
        child.on('exit', (code) => {
            const last = stdout.trim().split('\n').pop() ?? '';
            try {
                resolvePromise(JSON.parse(last) as FleetResult);
            } catch {
                reject(new Error(`the ${spec.vms}-VM fleet exited with ${code} and no result`));
            }
        });
    });
}

/** Bench options, with the defaults the issue asks for (small disks, 10 cycles, 25 to 200 VMs). */
export function parseScaleArgs(argv: string[]): { sizes: number[]; spec: Omit<FleetSpec, 'vms' | 'pollIntervalMs'> } {
    const { values } = parseArgs({
        args: argv,
        strict: true,
        options: {
            vms: { type: 'string' },
            cycles: { type: 'string' },
            disks: { type: 'string' },
            'disk-size': { type: 'string' },
            churn: { type: 'string' },
            durable: { type: 'string' },
            timeout: { type: 'string' },
            'azurite-on-disk': { type: 'boolean' },
        },
    });
    const whole = (v: string | undefined, name: string, fallback: number, min: number, max: number): number => {
        if (v === undefined) return fallback;
        const n = Number(v);
        if (!/^\d+$/.test(v) || n < min || n > max) throw new Error(`--${name} must be ${min} to ${max}; got "${v}"`);
        return n;
    };
    const sizes = (values.vms ?? '25,50,100,200').split(',').map((s) => whole(s.trim(), 'vms', 0, 1, 1000));
    return {
        sizes,
        spec: {
            cycles: whole(values.cycles, 'cycles', 10, 1, 1000),
            disks: whole(values.disks, 'disks', 2, 1, 17),
            diskSize: parseByteSize(values['disk-size'] ?? '4M'),
            churn: parseByteSize(values.churn ?? '64K'),
            durable: parseDurableEngine(values.durable ?? 'embedded', '--durable'),
            stepTimeoutMs: whole(values.timeout, 'timeout', 900, 10, 86_400) * 1000,
            ...(values['azurite-on-disk'] ? { azuriteOnDisk: true } : {}),
        },
    };
}

/**
 * The simulator polls each VM's state while it waits; at a fixed interval its reads would grow with the fleet
 * times the cycle's length. Spread with the fleet, they stay one poll per VM every 40 ms × fleet (at least 1 s): about 25 polls a second in all.
 */
export const pollIntervalFor = (vms: number): number => Math.max(1000, vms * 40);

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

export async function bench(argv: string[] = []): Promise<Record<string, unknown>> {
    const { sizes, spec } = parseScaleArgs(argv);
    const fleets: FleetResult[] = [];
    for (const vms of sizes) {
        const before = loadavg().map((l) => round(l, 1));
        log(
            `${vms} VMs × ${spec.disks} disks of ${spec.diskSize} B, ${spec.cycles} cycles, ${spec.durable} (load ${before.join(' ')})`,
        );
        const started = Date.now();
        const result = await runFleet({ ...spec, vms, pollIntervalMs: pollIntervalFor(vms) });
        result.load = [...before, ...loadavg().map((l) => round(l, 1))];
        log(
            `${vms} VMs: ${result.ok ? 'ok' : 'FAILED'} in ${round((Date.now() - started) / 1000, 1)} s: ${JSON.stringify(result)}`,
        );
        fleets.push(result);
    }
    const measured = fleets.filter((f) => f.ok && f.cpuMsPerVmCycle);
    const first = measured[0];
    const last = measured[measured.length - 1];
    const growth =
        first && last && first !== last
            ? {
                  from: first.vms,
                  to: last.vms,
                  cpuPerVmCycle: round(last.cpuMsPerVmCycle!.total / first.cpuMsPerVmCycle!.total, 3),
                  cycleWallPerVm: round(last.cycleWallSeconds! / last.vms / (first.cycleWallSeconds! / first.vms), 3),
                  rssPerVm: round(last.rssPerVmMiB! / first.rssPerVmMiB!, 3),
              }
            : undefined;
    return { scale: { ...spec, fleets, ...(growth ? { growth } : {}) } };
}
