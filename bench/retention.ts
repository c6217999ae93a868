import { ByteRange, rangeBytes, unionRanges } from '../shared/replica/byteRanges';
import { planRetention, RetentionTiers } from '../shared/replica/retentionSchedule';

/**
 * `npm run bench -- retention`: storage held by 30 days of recovery points of one disk under a churn pattern,
 * for the tiered policy against two baselines — keeping every cycle for 30 days, and a full copy per point.
 * Uses the app's rules: `planRetention` thins the points every hour as the prune sweep does, a pruned point's
 * changed ranges are unioned into the next point (pruneSweep), and the held bytes are summed as
 * `pointStorage` does (each point's unique pages = the changes between it and the next). No storage is touched:
 * Azurite ignores `prevsnapshot`, so billing cannot be measured here, only computed from the extents.
 */
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const BLOCK = 64 * 1024;
const DISK = 256 * GiB;
const WRITTEN = 0.4 * DISK;
const CYCLE_MINUTES = 5;
const DAYS = 30;
const MONTH: RetentionTiers = { allPointsHours: 24, hourlyHours: 72, dailyDays: 30, weeklyWeeks: 12 };

/** A database server's pattern: a 4 GiB hot set (tables, indexes, its log) rewritten all day, scattered writes
 * over the disk's data, and a nightly 6 GiB batch (a backup file, reindexing) at 02:00. */
function churn(cycle: number, rand: () => number): ByteRange[] {
    const out: ByteRange[] = [];
    const hotBase = 10 * GiB;
    for (let i = 0; i < 320; i++)
        out.push({ offset: hotBase + Math.floor(rand() * ((4 * GiB) / BLOCK)) * BLOCK, length: BLOCK });
    for (let i = 0; i < 64; i++) out.push({ offset: Math.floor(rand() * (WRITTEN / BLOCK)) * BLOCK, length: BLOCK });
    const minuteOfDay = (cycle * CYCLE_MINUTES) % (24 * 60);
    if (minuteOfDay >= 120 && minuteOfDay < 180) {
        // 6 GiB over the hour: a batch region that moves each night.
        const night = Math.floor((cycle * CYCLE_MINUTES) / (24 * 60));
        const base = 40 * GiB + (night % 10) * 6 * GiB + ((minuteOfDay - 120) / CYCLE_MINUTES) * ((6 * GiB) / 12);
        out.push({ offset: base, length: (6 * GiB) / 12 });
    }
    return unionRanges(out);
}

interface SimPoint {
    cycleId: string;
    capturedAt: string;
    consistency: 'CrashConsistent' | 'AppConsistent';
    changes: ByteRange[];
}

function heldBytes(points: readonly SimPoint[], pending: ByteRange[]): number {
    // Newest first: each point's unique bytes are the next newer point's changes (the newest: the live changes).
    const ordered = [...points].sort((a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt));
    let held = rangeBytes(pending);
    for (let i = 1; i < ordered.length; i++) held += rangeBytes(ordered[i - 1]!.changes);
    return held;
}

export async function bench(): Promise<Record<string, unknown>> {
    let seed = 20;
    const rand = (): number => {
        seed = (seed + 0x6d2b79f5) >>> 0;
        let t = seed;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const start = Date.UTC(2026, 0, 5);
    const cycles = (DAYS * 24 * 60) / CYCLE_MINUTES;
    let tiered: SimPoint[] = [];
    let everyCycleHeld = 0;
    let churnBytes = 0;
    const started = performance.now();
    for (let c = 1; c <= cycles; c++) {
        const at = start + c * CYCLE_MINUTES * 60_000;
        const changes = churn(c, rand);
        churnBytes += rangeBytes(changes);
        // Keeping every cycle: every point but the oldest holds the next one's changes.
        if (c > 1) everyCycleHeld += rangeBytes(changes);
        tiered.push({
            cycleId: `c${c}`,
            capturedAt: new Date(at).toISOString(),
            consistency: c % 48 === 0 ? 'AppConsistent' : 'CrashConsistent',
            changes,
        });
        if (c % (60 / CYCLE_MINUTES) === 0) {
            const { prune } = planRetention(tiered, new Date(at), MONTH);
            const gone = new Set(prune.map((p) => p.cycleId));
            const oldestFirst = [...tiered].sort((a, b) => Date.parse(a.capturedAt) - Date.parse(b.capturedAt));
            const kept: SimPoint[] = [];
            let carry: ByteRange[] = [];
            for (const p of oldestFirst) {
                if (gone.has(p.cycleId)) {
                    carry = unionRanges(carry, p.changes);
                    continue;
                }
                kept.push(carry.length > 0 ? { ...p, changes: unionRanges(carry, p.changes) } : p);
                carry = [];
            }
            tiered = kept;
        }
        if (c % 1000 === 0)
            process.stderr.write(`retention bench: cycle ${c}/${cycles}, ${tiered.length} points kept\n`);
    }
    const tieredHeld = heldBytes(tiered, []);
    const gib = (n: number): number => Math.round((n / GiB) * 100) / 100;
    return {
        bench: 'retention',
        disk: { sizeGiB: gib(DISK), writtenGiB: gib(WRITTEN) },
        pattern: {
            cycleMinutes: CYCLE_MINUTES,
            days: DAYS,
            cycles,
            churnGiBPerDay: gib(churnBytes / DAYS),
            description:
                '4 GiB hot set, 320 × 64 KiB hot + 64 × 64 KiB scattered writes per cycle, 6 GiB nightly batch',
        },
        policy: MONTH,
        tiered: { points: tiered.length, heldGiB: gib(tieredHeld) },
        everyCycle: { points: cycles, heldGiB: gib(everyCycleHeld) },
        fullCopyPerPoint: { points: tiered.length, heldGiB: gib(tiered.length * WRITTEN) },
        tieredVsEveryCycle: Math.round((tieredHeld / everyCycleHeld) * 1000) / 1000,
        tieredVsFullCopy: Math.round((tieredHeld / (tiered.length * WRITTEN)) * 10000) / 10000,
        ms: Math.round(performance.now() - started),
        note: `${MiB} B = 1 MiB; held bytes are snapshot pages beyond the live replica`,
    };
}
