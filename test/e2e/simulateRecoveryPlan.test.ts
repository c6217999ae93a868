import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseSimulateArgs } from '../../tools/simulate';
import { groupOrderProblems, planGroups } from '../../tools/simulator/recoveryPlanRun';
import { runSimulation } from '../../tools/simulator/simulation';

const ROOT = resolve(__dirname, '..', '..');

/** The app as the worker loads it: TypeScript sources under jest. */
function appModules(): string[] {
    return ['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(ROOT, dir, f)),
    );
}

describe('hvr simulate --recovery-plan (local host, own Azurite)', () => {
    let outDir: string;
    beforeEach(() => {
        outDir = mkdtempSync(join(tmpdir(), 'hvr-sim-plan-'));
    });
    afterEach(() => {
        rmSync(outDir, { recursive: true, force: true });
    });

    it('runs the VMs as a plan of three groups, held by a manual step the simulator resumes, every failover disk equal to its source', async () => {
        const lines: string[] = [];
        const result = await runSimulation({
            outDir,
            seed: 5,
            vms: 3,
            disks: 1,
            diskSize: 4 * 1024 * 1024,
            cycles: 1,
            churn: 128 * 1024,
            faults: new Set(),
            appRoot: ROOT,
            modules: appModules(),
            stepTimeoutMs: 150_000,
            recoveryPlan: true,
            progress: (line) => lines.push(line),
        });
        if (!result.ok) console.error(lines.join('\n'));
        expect(result.failure).toBeUndefined();
        expect(result.ok).toBe(true);
        expect(result.recoveryPlan).toMatchObject({
            groups: [['vm-1'], ['vm-2'], ['vm-3']],
            heldAt: 'Group 2: pre-action Simulator check',
            orderProblems: [],
        });
        expect(result.failoverDisks).toHaveLength(3);
        for (const d of result.failoverDisks) {
            expect(d.equal).toBe(true);
            expect(existsSync(d.vhdPath)).toBe(true);
        }
        expect(lines).toEqual(
            expect.arrayContaining([
                expect.stringMatching(/held at "Group 2: pre-action Simulator check"; resuming it$/),
                expect.stringMatching(/the 3 groups ran in order$/),
                expect.stringMatching(/recovery plan test failover cleaned up$/),
            ]),
        );
    }, 600_000);

    it('refuses --recovery-plan with --failover or --test-failover', () => {
        expect(() => parseSimulateArgs(['--out', outDir, '--recovery-plan', '--failover', 'planned'])).toThrow(
            /--recovery-plan excludes/,
        );
        expect(parseSimulateArgs(['--out', outDir, '--recovery-plan'])).toMatchObject({ recoveryPlan: true });
    });

    it('splits VMs into up to three groups and finds a group that started before the previous one ended', () => {
        expect(planGroups(['a'])).toEqual([['a']]);
        expect(planGroups(['a', 'b', 'c', 'd', 'e'])).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
        const t = (name: string, startTime: string, endTime: string) => ({
            name,
            state: 'Succeeded',
            startTime,
            endTime,
        });
        const tasks = [
            t('Group 1', '2025-01-01T00:00:00Z', '2025-01-01T00:10:00Z'),
            t('Group 1: VM a', '2025-01-01T00:00:01Z', '2025-01-01T00:09:00Z'),
            t('Group 2', '2025-01-01T00:05:00Z', '2025-01-01T00:20:00Z'),
            t('Group 2: VM b', '2025-01-01T00:06:00Z', '2025-01-01T00:21:00Z'),
        ];
        expect(groupOrderProblems(tasks, [['a'], ['b']])).toEqual([
            'Group 2 started at 2025-01-01T00:05:00Z before the previous group ended',
            'Group 2: VM b ran (2025-01-01T00:06:00Z–2025-01-01T00:21:00Z) outside its group',
        ]);
    });
});
