import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Fault, runSimulation, SimulationResult } from '../../tools/simulator/simulation';

const ROOT = resolve(__dirname, '..', '..');
const QEMU_IMG = '/usr/bin/qemu-img';

/** The app as the worker loads it: TypeScript sources under jest. */
function appModules(): string[] {
    return ['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(ROOT, dir, f)),
    );
}

async function simulate(
    faults: Fault[],
    outDir: string,
    extra: { testFailover?: boolean; cycles?: number } = {},
): Promise<{ result: SimulationResult; lines: string[] }> {
    const lines: string[] = [];
    const result = await runSimulation({
        outDir,
        seed: 7,
        vms: 2,
        disks: 2,
        diskSize: 4 * 1024 * 1024,
        cycles: extra.cycles ?? 3,
        testFailover: extra.testFailover ?? false,
        churn: 256 * 1024,
        faults: new Set(faults),
        appRoot: ROOT,
        modules: appModules(),
        stepTimeoutMs: 45_000,
        progress: (line) => lines.push(line),
    });
    // Say what went wrong in the test output, not only that something did.
    if (!result.ok) console.error(lines.join('\n'));
    return { result, lines };
}

/** qemu-img reads the .vhd as a fixed VHD (its footer) and compares it with the raw source. */
function qemuCompare(rawPath: string, vhdPath: string): void {
    if (!existsSync(QEMU_IMG)) return;
    execFileSync(QEMU_IMG, ['compare', '-f', 'raw', '-F', 'vpc', rawPath, vhdPath], { stdio: 'pipe' });
}

describe('hvr simulate end to end (local host, own Azurite per run)', () => {
    let outDir: string;
    beforeEach(() => {
        outDir = mkdtempSync(join(tmpdir(), 'hvr-sim-'));
    });
    afterEach(() => {
        rmSync(outDir, { recursive: true, force: true });
    });

    it('replicates 2 VMs × 2 disks through initial replication and 3 cycles; every replica equals its source', async () => {
        const { result } = await simulate([], outDir);

        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        // The app's own command trigger did the work: the simulator stood in for nothing.
        expect(result.warnings).toEqual([]);
        expect(result.replicas).toHaveLength(4);
        for (const r of result.replicas) {
            expect(r).toMatchObject({ equal: true });
            qemuCompare(r.rawPath, r.vhdPath);
        }
        for (const vm of result.vms) {
            expect(vm.state).toBe('Protected');
            // The initial replication point and one per cycle (retention keeps all of them here).
            expect(vm.recoveryPoints).toBeGreaterThanOrEqual(4);
            expect(vm.jobs).toEqual(
                expect.arrayContaining([
                    { name: 'Enable protection', state: 'Succeeded' },
                    expect.objectContaining({ state: 'Succeeded' }),
                ]),
            );
        }
        // Initial replication (at least one log per disk) and one log per disk per cycle.
        expect(result.totals.logs).toBeGreaterThanOrEqual(4 + 4 * 3);
    });

    it('converges with duplicated and reordered uploads', async () => {
        const { result } = await simulate(['duplicate', 'reorder'], outDir);

        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        for (const r of result.replicas) {
            expect(r.equal).toBe(true);
            qemuCompare(r.rawPath, r.vhdPath);
        }
        for (const vm of result.vms) expect(vm.state).toBe('Protected');
    });

    it('resynchronizes after a lost log through digest rounds and resumes delta replication', async () => {
        const { result, lines } = await simulate(['drop'], outDir);

        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        expect(result.warnings).toEqual([]);
        expect(result.replicas).toHaveLength(4);
        for (const r of result.replicas) {
            expect(r).toMatchObject({ equal: true });
            qemuCompare(r.rawPath, r.vhdPath);
        }
        // The fault really happened and the pipeline, not the simulator, found it.
        expect(lines).toEqual(
            expect.arrayContaining([expect.stringMatching(/vm-1\/data1: log \d+ .* lost on the way/)]),
        );
        expect(lines).toEqual(
            expect.arrayContaining([expect.stringMatching(/vm-1: the pipeline marked data1 for resynchronization/)]),
        );
        // The lost log's disk differs from its replica, so its comparison went down to the 4 KiB leaves: round 1
        // from StartResync, then one ResyncDigestRequest per finer level (3 levels with the default geometry).
        expect(lines).toEqual(
            expect.arrayContaining([expect.stringMatching(/vm-1\/data1: resync compared in 3 round\(s\); [1-9]/)]),
        );
        const vm1 = result.vms.find((v) => v.vmId === 'vm-1')!;
        expect(vm1.state).toBe('Protected');
        expect(vm1.jobs).toContainEqual({ name: 'Resynchronize', state: 'Succeeded' });
        expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/vm-1: resynchronized/)]));
    });

    it('--test-failover: each VM fails over to its latest point; the failover disks equal the sources; drill jobs succeed', async () => {
        const { result, lines } = await simulate([], outDir, { testFailover: true, cycles: 2 });

        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        expect(result.failoverDisks).toHaveLength(4);
        for (const d of result.failoverDisks) {
            expect(d).toMatchObject({ equal: true, recoveryPointId: `${d.vmId}:cycle-2` });
            expect(d.vhdPath).toBe(join(outDir, d.vmId, `${d.diskId}.failover.vhd`));
            // The drill's blobs are gone after cleanup; the downloaded copies stay.
            expect(existsSync(d.vhdPath)).toBe(true);
            qemuCompare(d.rawPath, d.vhdPath);
        }
        for (const vm of result.vms) {
            expect(vm.state).toBe('Protected');
            expect(vm.jobs).toEqual(
                expect.arrayContaining([
                    { name: 'Test failover', state: 'Succeeded' },
                    { name: 'Test failover cleanup', state: 'Succeeded' },
                ]),
            );
        }
        expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/vm-2: test failover cleaned up/)]));
    });
});
