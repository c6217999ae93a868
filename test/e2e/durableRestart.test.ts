import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startAzurite, type RunningAzurite } from '../../packages/functions-local/src';
import { ManagementClient, type JobView } from '../../tools/simulator/managementClient';
import { QEMU_IMG } from '../../tools/simulator/qemuCompare';
import { runSimulation, type Fault, type SimulationResult } from '../../tools/simulator/simulation';
import { collectOutputLines, waitFor } from '../crash/support';

jest.setTimeout(900_000);

const ROOT = resolve(__dirname, '..', '..');
const KEY = 'durable-restart-key';

async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    await new Promise<void>((r) => server.close(() => r()));
    return port;
}

interface HostProcess {
    child: ChildProcess;
    output: string[];
    ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The local host as a child process (test/e2e/child/durableHost.ts) on the test's Azurite. */
function startHost(env: Record<string, string>): HostProcess {
    const child = spawn(
        process.execPath,
        ['-r', join(ROOT, 'test/crash/child/register.js'), join(__dirname, 'child/durableHost.ts')],
        { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output = collectOutputLines(child);
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        child.on('exit', (code, signal) => r({ code, signal })),
    );
    return { child, output, ended };
}

async function ready(host: HostProcess, timeoutMs = 240_000): Promise<string> {
    return waitFor(
        async () => {
            const line = host.output.find((l) => l.startsWith('READY '));
            if (line) return line.split(' ')[2]!;
            if (host.child.exitCode !== null) throw new Error(`the host exited: ${host.output.slice(-10).join('\n')}`);
            return undefined;
        },
        timeoutMs,
        () => `the host did not start: ${host.output.slice(-10).join(' | ')}`,
    );
}

async function jobOf(api: ManagementClient, vmId: string, name: string): Promise<JobView | undefined> {
    const jobs = await api.jobs(vmId).catch(() => []);
    return jobs.find((j) => j.displayName === name);
}

describe('a host killed with SIGKILL and restarted on the same storage finishes the jobs it was running', () => {
    let azurite: RunningAzurite;
    let outDir: string;
    const hosts: HostProcess[] = [];
    let env: Record<string, string>;
    let api: ManagementClient;

    beforeEach(async () => {
        azurite = await startAzurite();
        outDir = mkdtempSync(join(tmpdir(), 'hvr-restart-'));
        const [port, busPort] = [await freePort(), await freePort()];
        env = {
            DURABLE_HOST_PORT: String(port),
            DURABLE_HOST_BUS_PORT: String(busPort),
            DURABLE_HOST_KEY: KEY,
            DURABLE_HOST_STORAGE: azurite.connectionString,
        };
        api = new ManagementClient(`http://127.0.0.1:${port}/api`, KEY);
    });
    afterEach(async () => {
        for (const h of hosts.splice(0)) {
            if (h.child.exitCode === null && h.child.signalCode === null) {
                h.child.kill('SIGKILL');
                await h.ended;
            }
        }
        await azurite.stop();
        rmSync(outDir, { recursive: true, force: true });
    });

    /** Runs hvr simulate against the child host, kills it when `killAt` holds, restarts it, waits for the end. */
    async function simulateThroughKill(
        faults: Fault[],
        killAt: (lines: string[]) => Promise<string | undefined>,
        firstHostEnv: Record<string, string> = {},
    ): Promise<{ result: SimulationResult; lines: string[]; killedAt: string; second: HostProcess }> {
        const first = startHost({ ...env, ...firstHostEnv });
        hosts.push(first);
        const bus = await ready(first);
        const lines: string[] = [];
        const run = runSimulation({
            outDir,
            seed: 11,
            vms: 1,
            disks: 2,
            diskSize: 4 * 1024 * 1024,
            cycles: 2,
            churn: 256 * 1024,
            faults: new Set(faults),
            testFailover: false,
            pipeline: {
                apiUrl: `http://127.0.0.1:${env.DURABLE_HOST_PORT}/api`,
                functionKey: KEY,
                storageConnectionString: azurite.connectionString,
                providerBusConnectionString: bus,
            },
            // A step the kill interrupts takes the product's retry schedule on top: the restarted host re-runs the
            // activity the killed one was running, which can fail once more on what that left (the digest index's
            // lease, up to 60 s), and the orchestration retries a minute after the attempt began. On a quiet
            // machine the resync had compared both disks 78 s after it was marked (StartResync before that), the
            // kill in between; in a loaded CI run StartResync took more than 240 s. The budget bounds a hang.
            stepTimeoutMs: 480_000,
            progress: (line) => lines.push(line),
        });
        const finished = run.then(() => true);
        const killedAt = await waitFor(
            async () => {
                if (await Promise.race([finished, Promise.resolve(false)])) {
                    throw new Error(`the run ended before the kill point: ${lines.join('\n')}`);
                }
                return killAt(lines);
            },
            600_000,
            () => `the kill point never came: ${lines.slice(-8).join(' | ')}`,
        );
        first.child.kill('SIGKILL');
        expect(await first.ended).toMatchObject({ signal: 'SIGKILL' });

        // The killed host never released the task hub's lease: the next one waits for it to expire if need be.
        const second = startHost(env);
        hosts.push(second);
        await ready(second);
        const result = await run;
        if (!result.ok) {
            console.error([...lines, '--- second host ---', ...second.output.slice(-60)].join('\n'));
        }
        return { result, lines, killedAt, second };
    }

    function expectIdenticalReplicas(result: SimulationResult): void {
        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        expect(result.replicas).toHaveLength(2);
        // The simulation compared each replica in-process and with qemu-img (CI installs it; elsewhere its
        // verdict says it was not run).
        for (const r of result.replicas) {
            expect(r).toMatchObject({ equal: true, qemuImg: existsSync(QEMU_IMG) ? 'identical' : 'unavailable' });
        }
    }

    it('killed during initial replication: protection completes (Enable and Finalize protection jobs); the replica equals the source', async () => {
        const vmIdIn = (lines: string[]) => /(vm-1-[0-9a-f]+): enable protection accepted/.exec(lines.join('\n'))?.[1];
        const { result, killedAt, second } = await simulateThroughKill(
            [],
            async (lines) => {
                const vmId = vmIdIn(lines);
                // Every disk's initial logs are up, so the provider waits only on the API from here on.
                const uploaded = lines.filter((l) => /initial replication uploaded/.test(l)).length;
                if (!vmId || uploaded < 2) return undefined;
                // As in ASR, the Enable protection job ends when initial replication starts; its orchestration
                // waits on (the item InitialReplicationInProgress) until the merge says the disks are in.
                const job = await jobOf(api, vmId, 'Enable protection');
                const item = await api.protectedItem(vmId).catch(() => undefined);
                const state = item?.properties.protectionState;
                return job?.state === 'Succeeded' && state === 'InitialReplicationInProgress'
                    ? `${job.displayName} ${job.state}; ${state}`
                    : undefined;
            },
            // No blob scans on the first host: the uploaded logs wait unmerged, so the job is still in initial
            // replication when the kill lands.
            { DURABLE_HOST_BLOB_SCAN_MS: '3600000' },
        );
        expect(killedAt).toBe('Enable protection Succeeded; InitialReplicationInProgress');
        // The restarted host found the running orchestration in storage. (Whether it first waited for the killed
        // host's lease depends on how long it took to start; test/durableState.test.ts in the package covers that.)
        expect(second.output).toEqual(
            expect.arrayContaining([
                expect.stringMatching(/\[durable\] [1-9]\d* saved instance\(s\) in \S+-embedded: /),
            ]),
        );
        expectIdenticalReplicas(result);
        expect(result.vms[0]!.jobs).toEqual(
            expect.arrayContaining([
                { name: 'Enable protection', state: 'Succeeded' },
                { name: 'Finalize protection on the virtual machine', state: 'Succeeded' },
            ]),
        );
        expect(result.vms[0]!.state).toBe('Protected');
    });

    it('killed during a resync: the Resynchronize job completes; the replica equals the source', async () => {
        const { result, killedAt, lines } = await simulateThroughKill(['drop'], async (lines) => {
            const vmId = /(vm-1-[0-9a-f]+): the pipeline marked/.exec(lines.join('\n'))?.[1];
            if (!vmId) return undefined;
            const job = await jobOf(api, vmId, 'Resynchronize');
            const task = job?.tasks.find((t) => t.state === 'InProgress');
            return job?.state === 'InProgress' && task ? `${job.state}: ${task.name}` : undefined;
        });
        expect(killedAt).toMatch(/^InProgress: /);
        expectIdenticalReplicas(result);
        expect(result.vms[0]!.jobs).toContainEqual({ name: 'Resynchronize', state: 'Succeeded' });
        expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/resynchronized/)]));
    });
});
