import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseSimulateArgs } from '../../tools/simulate';
import { QEMU_IMG } from '../../tools/simulator/qemuCompare';
import { runSimulation, SimulationOptions, SimulationResult } from '../../tools/simulator/simulation';

const ROOT = resolve(__dirname, '..', '..');

/** The app as the worker loads it: TypeScript sources under jest. */
function appModules(): string[] {
    return ['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(ROOT, dir, f)),
    );
}

async function simulate(
    outDir: string,
    extra: Partial<SimulationOptions>,
): Promise<{ result: SimulationResult; lines: string[] }> {
    const lines: string[] = [];
    const result = await runSimulation({
        outDir,
        seed: 11,
        vms: 2,
        disks: 2,
        diskSize: 4 * 1024 * 1024,
        cycles: 3,
        churn: 256 * 1024,
        faults: new Set(),
        appRoot: ROOT,
        modules: appModules(),
        stepTimeoutMs: 45_000,
        progress: (line) => lines.push(line),
        ...extra,
    });
    if (!result.ok) console.error(lines.join('\n'));
    return { result, lines };
}

if (!existsSync(QEMU_IMG)) {
    console.warn(`${QEMU_IMG} is not installed: the failover disks are compared in-process only (.ci/run installs it)`);
}
const expectedQemu = existsSync(QEMU_IMG) ? 'identical' : 'unavailable';

describe('hvr simulate --failover (local host, own Azurite per run)', () => {
    let outDir: string;
    beforeEach(() => {
        outDir = mkdtempSync(join(tmpdir(), 'hvr-sim-fo-'));
    });
    afterEach(() => {
        rmSync(outDir, { recursive: true, force: true });
    });

    it('planned: the guests write until the shutdown, every failover disk equals the source at shutdown, RPO 0', async () => {
        const { result, lines } = await simulate(outDir, { failover: 'planned' });

        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        expect(result.warnings).toEqual([]);
        expect(result.failovers).toHaveLength(2);
        for (const f of result.failovers) {
            expect(f).toMatchObject({
                kind: 'PlannedFailover',
                recoveryPointId: `${f.vmId}:final`,
                rpoSeconds: 0,
                pointsAfterCommit: 1,
            });
            expect(f.disks).toHaveLength(2);
            for (const d of f.disks) expect(d).toMatchObject({ equal: true, qemuImg: expectedQemu });
        }
        // The guests really wrote after the last cycle: the final cycle carried data the last point did not have.
        expect(lines).toEqual(
            expect.arrayContaining([expect.stringMatching(/vm-1: shut down for failover fo-\S+ after [1-9]\d* bytes/)]),
        );
        // The replicas took the final cycle too, and equal the sources at shutdown.
        for (const r of result.replicas) expect(r.equal).toBe(true);
        for (const vm of result.vms) {
            expect(vm.state).toBe('FailoverCommitted');
            expect(vm.jobs).toEqual(
                expect.arrayContaining([
                    { name: 'Planned failover', state: 'Succeeded' },
                    { name: 'Commit', state: 'Succeeded' },
                ]),
            );
        }
    });

    it('--change-point: after an unplanned failover the VM moves to the older point; its disks are that cycle', async () => {
        const { result } = await simulate(outDir, { failover: 'unplanned', changePoint: true, vms: 1 });

        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        const [f] = result.failovers;
        expect(f).toMatchObject({
            kind: 'UnplannedFailover',
            recoveryPointId: 'vm-1:cycle-3',
            changedTo: 'vm-1:cycle-2',
            pointsAfterCommit: 1,
        });
        const changed = f!.disks.filter((d) => d.recoveryPointId === 'vm-1:cycle-2');
        expect(changed.map((d) => d.diskId).sort()).toEqual(['data1', 'os']);
        for (const d of f!.disks) expect(d).toMatchObject({ equal: true, qemuImg: expectedQemu });
        expect(changed.every((d) => d.rawPath.endsWith('.cycle-2.raw'))).toBe(true);
        expect(result.vms[0]!.jobs).toEqual(
            expect.arrayContaining([{ name: 'Change recovery point', state: 'Succeeded' }]),
        );
    });
});

describe('hvr simulate failover options', () => {
    it('--failover planned|unplanned, --change-point implying unplanned, and the combinations refused', () => {
        expect(parseSimulateArgs(['--out', 'x', '--failover', 'planned'])).toMatchObject({
            failover: 'planned',
            changePoint: false,
        });
        expect(parseSimulateArgs(['--out', 'x', '--change-point'])).toMatchObject({
            failover: 'unplanned',
            changePoint: true,
        });
        expect(() => parseSimulateArgs(['--out', 'x', '--failover', 'soon'])).toThrow(/planned or unplanned/);
        expect(() => parseSimulateArgs(['--out', 'x', '--failover', 'planned', '--test-failover'])).toThrow(
            /exclude each other/,
        );
        expect(() => parseSimulateArgs(['--out', 'x', '--change-point', '--cycles', '1'])).toThrow(/--cycles 2/);
    });
});
