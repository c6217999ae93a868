import { RunningAzurite, startAzurite } from '../../packages/functions-local/src';
import { hasQemuImg, qemuCompare, ReplicaHarness, seededRandom } from '../integration/replica/harness';
import { diskRow, MergeHostProcess, startMergeHost, waitFor } from './support';

jest.setTimeout(240_000);

const MiB = 1024 * 1024;
const BUDGET_SECONDS = 1;
const LEASE_SECONDS = 4;
/** The seed of the kill points; printed, so a failing run can be repeated with CRASH_SEED. */
const SEED = Number(process.env.CRASH_SEED ?? 20261201);

interface ProgressLine {
    at: number;
    stepsDone: number;
    steps: number;
}

/** "…wrote K of N steps in this budget; continuing" lines, with the host's time stamp. */
function progressOf(output: string[]): ProgressLine[] {
    const out: ProgressLine[] = [];
    for (const line of output) {
        const m = /^(\d+) .*merge: \S+ wrote (\d+) of (\d+) steps in this budget/.exec(line);
        if (m) out.push({ at: Number(m[1]), stepsDone: Number(m[2]), steps: Number(m[3]) });
    }
    return out;
}

describe('a merge of several budgets killed with SIGKILL at seeded random points', () => {
    let azurite: RunningAzurite;
    beforeAll(async () => {
        azurite = await startAzurite();
    });
    afterAll(async () => {
        await azurite.stop();
    });

    it('loses at most one budget per kill and completes with an identical replica', async () => {
        process.stdout.write(`kill points seeded with CRASH_SEED=${SEED}\n`);
        const rand = seededRandom(SEED);
        const h = new ReplicaHarness(azurite.connectionString);
        const disk = await h.addDisk('disk0', 32 * MiB);
        disk.randomWrites(seededRandom(SEED + 1), 200);
        const cut = disk.cutLog();
        await h.upload('disk0', cut);
        // Page calls slowed down so the log spans several 1-second budgets.
        const env = {
            MERGE_TIME_BUDGET_SECONDS: String(BUDGET_SECONDS),
            CRASH_PUT_DELAY_MS: '30',
            CRASH_LEASE_SECONDS: String(LEASE_SECONDS),
        };

        let recordedBefore = 0;
        for (let kill = 1; kill <= 2; kill++) {
            const victim: MergeHostProcess = startMergeHost(h, azurite.connectionString, env);
            // Wait for this process to record one budget's progress, then kill it a random time later.
            await waitFor(
                // A host that takes over late can finish the rest within one budget: then there is nothing to kill.
                async () =>
                    progressOf(victim.output).length > 0 || (await diskRow(h)).sequence === 1 ? true : undefined,
                90_000,
                () => `no progress line from the merge host (${victim.output.slice(-5).join(' | ')})`,
            );
            const delayMs = Math.floor(rand() * 2500);
            await new Promise((r) => setTimeout(r, delayMs));
            victim.child.kill('SIGKILL');
            const ended = await victim.ended;
            expect(ended.signal).toBe('SIGKILL');
            const progress = progressOf(victim.output);
            const last = progress[progress.length - 1]!;
            const row = await diskRow(h);
            if (row.sequence === 1) break; // the log finished before the kill landed: nothing left to lose
            // Nothing recorded is lost: the row holds at least the last progress the process reported.
            expect(row.applyingStep).toBeGreaterThanOrEqual(last.stepsDone);
            expect(row.applyingStep).toBeGreaterThan(recordedBefore);
            // At most one budget of work is lost: the last record is no older than one budget (plus the time
            // to take the continuation from the queue and to read the index).
            const lostMs = ended.at - last.at;
            process.stdout.write(
                `kill ${kill}: ${delayMs} ms after progress, recorded step ${row.applyingStep} of ${last.steps}, ` +
                    `work since the last record ${lostMs} ms\n`,
            );
            expect(lostMs).toBeLessThan(BUDGET_SECONDS * 1000 + 1500);
            recordedBefore = row.applyingStep!;
        }

        // A clean host finishes from the recorded step.
        const finisher = startMergeHost(h, azurite.connectionString, { ...env, CRASH_PUT_DELAY_MS: '0' });
        try {
            await waitFor(
                async () => {
                    const r = await diskRow(h);
                    return r.sequence === 1 && r.applyingSequence === undefined ? true : undefined;
                },
                120_000,
                () => `the merge did not finish (${finisher.output.slice(-5).join(' | ')})`,
            );
        } finally {
            finisher.child.kill('SIGTERM');
            await finisher.ended;
        }
        const replica = await h.replicaBytes('disk0');
        expect(replica.subarray(0, disk.virtualSize).equals(disk.bytes)).toBe(true);
        if (hasQemuImg) expect(await qemuCompare(disk.bytes, replica)).toMatchObject({ code: 0 });
        else process.stdout.write('qemu-img is missing: the independent VHD comparison is skipped\n');
    });
});
