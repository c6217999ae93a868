import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseSimulateArgs } from '../../tools/simulate';
import { QEMU_IMG } from '../../tools/simulator/qemuCompare';
import { runSimulation } from '../../tools/simulator/simulation';

const ROOT = resolve(__dirname, '..', '..');

function appModules(): string[] {
    return ['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(ROOT, dir, f)),
    );
}

const expectedQemu = existsSync(QEMU_IMG) ? 'identical' : 'unavailable';

describe('hvr simulate --failover planned --failback --reprotect (local host, own Azurite)', () => {
    let outDir: string;
    beforeEach(() => {
        outDir = mkdtempSync(join(tmpdir(), 'hvr-sim-fb-'));
    });
    afterEach(() => {
        rmSync(outDir, { recursive: true, force: true });
    });

    it('parses the flags and refuses them without a failover', () => {
        const parsed = parseSimulateArgs(['--out', 'x', '--failover', 'planned', '--failback', '--reprotect']);
        expect(parsed.failback).toEqual({ dataSyncOption: 'ForDownTime', reprotect: true });
        const full = parseSimulateArgs(['--out', 'x', '--failover', 'planned', '--failback', '--full-download']);
        expect(full.failback).toEqual({ dataSyncOption: 'ForSynchronization', reprotect: false });
        expect(() => parseSimulateArgs(['--out', 'x', '--failback'])).toThrow(/needs --failover/);
        expect(() => parseSimulateArgs(['--out', 'x', '--failover', 'planned', '--reprotect'])).toThrow(
            /need --failback/,
        );
    });

    it('brings the on-premises disks level with the VM in Azure, re-protects, and later cycles replicate', async () => {
        const lines: string[] = [];
        const result = await runSimulation({
            outDir,
            seed: 17,
            vms: 1,
            disks: 2,
            diskSize: 8 * 1024 * 1024,
            cycles: 2,
            churn: 256 * 1024,
            faults: new Set(),
            appRoot: ROOT,
            modules: appModules(),
            stepTimeoutMs: 60_000,
            failover: 'planned',
            failback: { dataSyncOption: 'ForDownTime', reprotect: true },
            progress: (line) => lines.push(line),
        });
        if (!result.ok) console.error(lines.join('\n'));
        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        const [fb] = result.failbacks;
        expect(fb).toBeDefined();
        expect(fb!.disks.map((d) => [d.stage, d.diskId, d.equal, d.qemuImg])).toEqual([
            ['failback', 'os', true, expectedQemu],
            ['failback', 'data1', true, expectedQemu],
            ['reprotect', 'os', true, expectedQemu],
            ['reprotect', 'data1', true, expectedQemu],
        ]);
        // At least what the VM in Azure wrote (256 KiB + a quarter more per disk), at most 1.25 times it.
        expect(fb!.azureChangedBytes).toBeGreaterThan(2 * 256 * 1024);
        expect(fb!.failbackRatio).toBeLessThanOrEqual(1.25);
        expect(fb!.reprotectDifferingBytes).toBeGreaterThan(0);
        expect(fb!.reprotectRatio).toBeLessThanOrEqual(1.25);
        // Replication resumed: the replicas equal the sources after the cycles that followed.
        expect(result.replicas.every((r) => r.equal)).toBe(true);
        expect(result.vms[0]).toMatchObject({ state: 'Protected' });
        expect(result.vms[0]!.jobs.map((j) => j.name)).toEqual(
            expect.arrayContaining(['Planned failover from Azure to on-premises', 'Re-protect', 'Resynchronize']),
        );
    }, 600_000);
});
