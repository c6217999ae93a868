import { planRetention, RetentionTiers, SchedulePoint, tierOf } from '../../../shared/replica/retentionSchedule';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
const start = Date.UTC(2026, 0, 5); // a Monday
const month: RetentionTiers = { allPointsHours: 24, hourlyHours: 72, dailyDays: 30, weeklyWeeks: 12 };

interface P extends SchedulePoint {
    at: number;
}

function point(at: number, consistency: P['consistency'] = 'CrashConsistent'): P {
    return { cycleId: `c${at}`, capturedAt: new Date(at).toISOString(), consistency, at };
}

/** Points every `everyMs` from `start` to `end`, the sweep run every `sweepMs` as the clock advances. */
function simulate(
    tiers: RetentionTiers,
    end: number,
    options: { everyMs?: number; sweepMs?: number; app?: (at: number) => boolean; protect?: Set<string> } = {},
): P[] {
    const every = options.everyMs ?? 5 * 60_000;
    const sweep = options.sweepMs ?? HOUR;
    let points: P[] = [];
    let nextSweep = start + sweep;
    for (let t = start; t <= end; t += every) {
        points.push(point(t, options.app?.(t) ? 'AppConsistent' : 'CrashConsistent'));
        if (t >= nextSweep) {
            const { prune } = planRetention(points, new Date(t), tiers, options.protect);
            const gone = new Set(prune.map((p) => p.cycleId));
            points = points.filter((p) => !gone.has(p.cycleId));
            nextSweep += sweep;
        }
    }
    const { prune } = planRetention(points, new Date(end), tiers, options.protect);
    const gone = new Set(prune.map((p) => p.cycleId));
    return points.filter((p) => !gone.has(p.cycleId));
}

/** Points whose bucket lies wholly inside [fromAge, toAge) of `now`, grouped by bucket. */
function perBucket(points: P[], now: number, size: number, fromAge: number, toAge: number, origin = 0) {
    const buckets = new Map<number, P[]>();
    for (const p of points) {
        const b = Math.floor((p.at - origin) / size);
        const bucketStart = b * size + origin;
        if (now - (bucketStart + size) < fromAge || now - bucketStart > toAge) continue;
        buckets.set(b, [...(buckets.get(b) ?? []), p]);
    }
    return buckets;
}

describe('tiered retention schedule', () => {
    it('places points in their tier by age', () => {
        const now = start + 100 * DAY;
        expect(tierOf(month, now - HOUR, HOUR)?.tier).toBe('all');
        expect(tierOf(month, now - 30 * HOUR, 30 * HOUR)?.tier).toBe('hourly');
        expect(tierOf(month, now - 5 * DAY, 5 * DAY)?.tier).toBe('daily');
        expect(tierOf(month, now - 40 * DAY, 40 * DAY)?.tier).toBe('weekly');
        expect(tierOf(month, now - 13 * WEEK, 13 * WEEK)).toBeUndefined();
    });

    it('keeps every cycle for 24 h, then one per hour to 72 h, one per day to 30 d, one per week to 12 w', () => {
        const end = start + 14 * WEEK;
        const kept = simulate(month, end);
        const all = kept.filter((p) => end - p.at < 24 * HOUR);
        expect(all).toHaveLength(24 * 12); // every 5 minutes
        for (const [, ps] of perBucket(kept, end, HOUR, 24 * HOUR, 72 * HOUR)) expect(ps).toHaveLength(1);
        expect(perBucket(kept, end, HOUR, 24 * HOUR, 72 * HOUR).size).toBe(48);
        for (const [, ps] of perBucket(kept, end, DAY, 72 * HOUR, 30 * DAY)) expect(ps).toHaveLength(1);
        expect(perBucket(kept, end, DAY, 72 * HOUR, 30 * DAY).size).toBe(27);
        const weeks = perBucket(kept, end, WEEK, 30 * DAY, 12 * WEEK, 4 * DAY);
        for (const [, ps] of weeks) expect(ps).toHaveLength(1);
        expect(weeks.size).toBeGreaterThanOrEqual(7);
        expect(kept.every((p) => end - p.at < 12 * WEEK)).toBe(true);
        // 289 + 48 + 27 + 8 or so: a few hundred points, not 12 weeks of 5-minute cycles.
        expect(kept.length).toBeLessThan(400);
    });

    it('prefers an app-consistent point when it thins a bucket', () => {
        const end = start + 10 * DAY;
        // One app-consistent point every 4 hours, at :20.
        const app = (at: number): boolean => (at - start) % (4 * HOUR) === 20 * 60_000;
        const kept = simulate(month, end, { app });
        for (const [, ps] of perBucket(kept, end, HOUR, 24 * HOUR, 72 * HOUR)) {
            const bucketHasApp = (ps[0]!.at - start) % (4 * HOUR) < HOUR;
            expect(ps[0]!.consistency).toBe(bucketHasApp ? 'AppConsistent' : 'CrashConsistent');
        }
        for (const [, ps] of perBucket(kept, end, DAY, 72 * HOUR, 30 * DAY)) {
            expect(ps.map((p) => p.consistency)).toEqual(['AppConsistent']);
        }
    });

    it('is idempotent: sweeping its own result again removes nothing', () => {
        const end = start + 40 * DAY;
        const kept = simulate(month, end);
        expect(planRetention(kept, new Date(end), month).prune).toEqual([]);
    });

    it('never removes a protected point, the newest, or the newest app-consistent one', () => {
        const end = start + 13 * WEEK;
        const oldApp = start + 20 * 60_000;
        const held = point(start + 7 * DAY + 15 * 60_000).cycleId;
        const kept = simulate(month, end, { app: (at) => at === oldApp, protect: new Set([held]), sweepMs: 6 * HOUR });
        const ids = new Set(kept.map((p) => p.cycleId));
        expect(ids.has(held)).toBe(true);
        expect(ids.has(`c${oldApp}`)).toBe(true);
        expect(ids.has(`c${end}`)).toBe(true);
    });

    it("with ASR's single 24-hour window keeps 24 hours and nothing older", () => {
        const end = start + 3 * DAY;
        const kept = simulate({ allPointsHours: 24, hourlyHours: 0, dailyDays: 0, weeklyWeeks: 0 }, end);
        expect(kept.every((p) => end - p.at < 24 * HOUR)).toBe(true);
        expect(kept).toHaveLength(24 * 12);
    });
});
