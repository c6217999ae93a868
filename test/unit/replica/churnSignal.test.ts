import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeRanges, encodeRanges, rangeBytes, unionRanges } from '../../../shared/replica/byteRanges';
import {
    BASELINE_WEIGHT,
    ChurnSampler,
    learnBaseline,
    NOVELTY_RISE,
    RANDOM_CHI_SQUARE,
    RANDOM_ENTROPY_BITS,
    SAMPLE_BYTES,
    SAMPLE_STRIDE_BYTES,
    scoreDiskChurn,
    SPREAD_SHARE,
    SURGE_DOUBLINGS,
    SUSPICIOUS_SCORE,
} from '../../../shared/replica/churnSignal';
import { latestCleanPoint, SUSPICIOUS_CHURN_REASON_DAYS } from '../../../shared/replica/cleanPoint';
import { RETENTION_LIMITS } from '../../../shared/policy/replicationPolicy';
import { RECOVERY_POINT_METRICS, SNAPSHOT_IMMUTABILITY_MODES } from '../../../shared/replica/recoveryPoints';
import { chooseRecoveryPoint, RECOVERY_POINT_CHOICE_TYPES } from '../../../shared/failover/recoveryPointChoice';
import { FAULTS } from '../../../tools/simulator/simulation';
import { RecoveryPoint } from '../../../shared/state/recoveryPoints';

const MiB = 1024 * 1024;
const ROOT = join(__dirname, '..', '..', '..');
const doc = (name: string): string => readFileSync(join(ROOT, 'docs', name), 'utf8');

function ciphertext(bytes: number): Buffer {
    const c = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16));
    return c.update(Buffer.alloc(bytes));
}

function text(bytes: number): Buffer {
    const line = Buffer.from('INSERT INTO orders VALUES (1042, 2026-03-01, "widget", 19.99);\n');
    const out = Buffer.alloc(bytes);
    for (let at = 0; at < bytes; at += line.length) line.copy(out, at);
    return out;
}

function measure(data: Buffer) {
    const s = new ChurnSampler();
    for (let at = 0; at < data.length; at += MiB) s.observe(data.subarray(at, at + MiB));
    return s.result();
}

describe('byte ranges', () => {
    it('unions, encodes exactly at 512 B and widens only when the set is too big for its property', () => {
        const set = unionRanges(
            [{ offset: 0, length: 1024 }],
            [
                { offset: 512, length: 1024 },
                { offset: 8192, length: 512 },
            ],
        );
        expect(set).toEqual([
            { offset: 0, length: 1536 },
            { offset: 8192, length: 512 },
        ]);
        expect(decodeRanges(encodeRanges(set))).toEqual(set);
        const many = Array.from({ length: 5000 }, (_, i) => ({ offset: i * 4096, length: 512 }));
        const small = encodeRanges(many, 2000);
        expect(small.length).toBeLessThanOrEqual(2000);
        expect(rangeBytes(decodeRanges(small))).toBeGreaterThanOrEqual(rangeBytes(many));
    });
});

describe('suspicious churn score', () => {
    it('samples ciphertext as random and text as not', () => {
        const enc = measure(ciphertext(4 * MiB));
        expect(enc.samples).toBe((4 * MiB) / SAMPLE_STRIDE_BYTES);
        expect(enc.randomSamples).toBe(enc.samples);
        expect(measure(text(4 * MiB)).randomSamples).toBe(0);
    });

    it('flags a text disk rewritten with ciphertext, not its usual churn nor a first copy', () => {
        const disk = 64 * MiB;
        let baseline = learnBaseline(undefined, scoreDiskChurn(measure(text(16 * MiB)), 16 * MiB, disk, undefined));
        expect(scoreDiskChurn(measure(text(16 * MiB)), 16 * MiB, disk, undefined).score).toBe(0);
        for (let i = 0; i < 5; i++) {
            const usual = scoreDiskChurn(measure(text(MiB / 2)), MiB / 2, disk, baseline);
            expect(usual.score).toBe(0);
            baseline = learnBaseline(baseline, usual);
        }
        const attack = scoreDiskChurn(measure(ciphertext(16 * MiB)), 16 * MiB, disk, baseline);
        expect(attack).toMatchObject({ novelty: 1, spread: 1, score: 1 });
        expect(attack.score).toBeGreaterThanOrEqual(SUSPICIOUS_SCORE);
        // Small ciphertext (a password vault saved) is not spread over the disk.
        expect(scoreDiskChurn(measure(ciphertext(MiB / 2)), MiB / 2, disk, baseline).score).toBeLessThan(
            SUSPICIOUS_SCORE,
        );
    });

    it('on a disk whose writes always look random, only a surge counts', () => {
        const disk = 64 * MiB;
        let baseline = learnBaseline(
            undefined,
            scoreDiskChurn(measure(ciphertext(16 * MiB)), 16 * MiB, disk, undefined),
        );
        for (let i = 0; i < 5; i++)
            baseline = learnBaseline(baseline, scoreDiskChurn(measure(ciphertext(MiB / 2)), MiB / 2, disk, baseline));
        expect(scoreDiskChurn(measure(ciphertext(MiB)), MiB, disk, baseline).score).toBeLessThan(0.05);
        const burst = scoreDiskChurn(measure(ciphertext(32 * MiB)), 32 * MiB, disk, baseline);
        expect(burst).toMatchObject({ novelty: 0, surge: 1, score: 1 });
    });
});

describe('the last clean point', () => {
    const p = (cycleId: string, minute: number, suspicious = false): RecoveryPoint => ({
        vmId: 'vm',
        cycleId,
        recoveryPointId: `vm:${cycleId}`,
        consistency: 'CrashConsistent',
        capturedAt: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString(),
        createdAt: '',
        disks: {},
        churn: { score: suspicious ? 1 : 0, suspicious, disks: {} },
    });

    it('goes back past the whole suspicious run, and past the calm points after it', () => {
        const points = [p('c1', 1), p('c2', 2), p('c3', 3, true), p('c4', 4, true), p('c5', 5)];
        expect(latestCleanPoint(points)?.cycleId).toBe('c2');
        expect(chooseRecoveryPoint(points, { type: 'LatestClean' }).cycleId).toBe('c2');
        expect(latestCleanPoint([p('c1', 1), p('c2', 2)])?.cycleId).toBe('c2');
        expect(() => chooseRecoveryPoint([p('c1', 1, true)], { type: 'LatestClean' })).toThrow(/no clean point left/);
    });
});

describe('docs restate the names and numbers the code owns', () => {
    it('docs/merge.md: the churn thresholds and weights', () => {
        const merge = doc('merge.md');
        for (const fragment of [
            `entropy ≥ ${RANDOM_ENTROPY_BITS} bits/byte`,
            `chi-square ≤ ${RANDOM_CHI_SQUARE}`,
            `one ${SAMPLE_BYTES / 1024} KiB window of Put\nPage data every ${SAMPLE_STRIDE_BYTES / 1024} KiB`,
            `(${SPREAD_SHARE * 100} % of the disk)`,
            `/ ${NOVELTY_RISE})`,
            `/ ${SURGE_DOUBLINGS}`,
            `suspicious** at ≥ ${SUSPICIOUS_SCORE}`,
            `weight ${BASELINE_WEIGHT}`,
            `for ${SUSPICIOUS_CHURN_REASON_DAYS} days`,
        ]) {
            expect(merge).toContain(fragment);
        }
    });

    it('docs/api.md: the retention bounds and every recovery point choice', () => {
        const api = doc('api.md');
        expect(api).toContain(
            `\`allPointsHours\` ≤ ${RETENTION_LIMITS.allPointsHours}, \`hourlyHours\` ≤ ${RETENTION_LIMITS.hourlyHours}, ` +
                `\`dailyDays\` ≤ ${RETENTION_LIMITS.dailyDays}, \`weeklyWeeks\` ≤ ${RETENTION_LIMITS.weeklyWeeks}, ` +
                `\`minimumRetentionDays\` ≤ ${RETENTION_LIMITS.minimumRetentionDays}`,
        );
        const failover = doc('failover.md');
        for (const type of RECOVERY_POINT_CHOICE_TYPES) expect(failover).toContain(`{ "type": "${type}"`);
    });

    it('docs/deploy.md: the immutability modes and the trace names the alerts read; simulator.md: every fault', () => {
        const deploy = doc('deploy.md');
        for (const m of SNAPSHOT_IMMUTABILITY_MODES) expect(deploy).toContain(`\`${m}\``);
        for (const name of Object.values(RECOVERY_POINT_METRICS)) expect(deploy).toContain(`'${name}'`);
        const simulator = doc('simulator.md');
        for (const f of FAULTS) expect(simulator).toContain(`\`${f}\``);
    });
});
