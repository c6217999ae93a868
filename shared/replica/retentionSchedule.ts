/**
 * Tiered (grandfather-father-son) retention of recovery points: which points a policy keeps at a given instant.
 * Pure: the prune sweep, the bench and the tests call the same rule.
 */

/** How long each tier lasts, measured back from now. Each tier ends where it says; 0 turns a tier off. */
export interface RetentionTiers {
    /** Every point younger than this is kept (ASR's 24 hours is `{ allPointsHours: 24 }` and nothing else). */
    allPointsHours: number;
    /** Then one point per clock hour (UTC) up to this age, in hours. */
    hourlyHours: number;
    /** Then one point per day (UTC) up to this age, in days. */
    dailyDays: number;
    /** Then one point per week (ISO week, Monday 00:00 UTC) up to this age, in weeks. */
    weeklyWeeks: number;
}

export const HOUR_MS = 3600_000;
export const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;
/** 1970-01-05 was a Monday: week buckets start there. */
const FIRST_MONDAY_MS = 4 * DAY_MS;

/** How long points are kept, from the VM's replication policy. */
export interface RetentionPolicy {
    /** Every point captured within this many hours is kept (0 keeps only the newest). No upper cap here. */
    retentionHours: number;
    /** Hours between app-consistent points (0: none); informs how long the newest one must outlive retention. */
    appConsistentFrequencyHours?: number;
    /** The tiers beyond `retentionHours` (hourly, daily, weekly); absent: the single window. */
    tiers?: RetentionTiers;
    /** Every point is held (undeletable) until it is this many days old. */
    minimumRetentionDays?: number;
}

/** The tiers a retention policy means. */
export function tiersOf(retention: RetentionPolicy): RetentionTiers {
    return retention.tiers ?? singleWindow(retention.retentionHours);
}

/** The tiers of a policy that only has ASR's single window. */
export function singleWindow(hours: number): RetentionTiers {
    return { allPointsHours: hours, hourlyHours: 0, dailyDays: 0, weeklyWeeks: 0 };
}

/** The age (ms) past which no point is kept by the tiers. */
export function retentionHorizonMs(t: RetentionTiers): number {
    return Math.max(t.allPointsHours * HOUR_MS, t.hourlyHours * HOUR_MS, t.dailyDays * DAY_MS, t.weeklyWeeks * WEEK_MS);
}

export type RetentionTier = 'all' | 'hourly' | 'daily' | 'weekly';

/** Which tier a point of age `ageMs` falls in, and its bucket within the tier; undefined: past every tier. */
export function tierOf(
    t: RetentionTiers,
    capturedMs: number,
    ageMs: number,
): { tier: RetentionTier; bucket: string } | undefined {
    if (ageMs < t.allPointsHours * HOUR_MS) return { tier: 'all', bucket: `a:${capturedMs}` };
    if (ageMs < t.hourlyHours * HOUR_MS) return { tier: 'hourly', bucket: `h:${Math.floor(capturedMs / HOUR_MS)}` };
    if (ageMs < t.dailyDays * DAY_MS) return { tier: 'daily', bucket: `d:${Math.floor(capturedMs / DAY_MS)}` };
    if (ageMs < t.weeklyWeeks * WEEK_MS) {
        return { tier: 'weekly', bucket: `w:${Math.floor((capturedMs - FIRST_MONDAY_MS) / WEEK_MS)}` };
    }
    return undefined;
}

/** What the schedule needs of a point. */
export interface SchedulePoint {
    cycleId: string;
    capturedAt: string;
    consistency: 'CrashConsistent' | 'AppConsistent';
}

/** Why a point stays. */
export type KeepReason = RetentionTier | 'newest' | 'newestAppConsistent' | 'protected';

/**
 * The points to keep at `now` and why: every point of the `all` tier; in every other tier one point per bucket
 * — the newest app-consistent point of the bucket if there is one, else the newest point; always the newest point
 * and the newest app-consistent point (there must be one to fail over to); and every point in `protectedIds`
 * (in use by a drill or failover, under a hold, or the last clean point before suspicious churn). The rest go.
 * Idempotent: applying it to its own result keeps the same points.
 */
export function planRetention<P extends SchedulePoint>(
    points: readonly P[],
    now: Date,
    tiers: RetentionTiers,
    protectedIds: ReadonlySet<string> = new Set(),
): { keep: Map<string, KeepReason>; prune: P[] } {
    const nowMs = now.getTime();
    const newestFirst = [...points].sort(
        (a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt) || b.cycleId.localeCompare(a.cycleId),
    );
    const keep = new Map<string, KeepReason>();
    for (const p of newestFirst) if (protectedIds.has(p.cycleId)) keep.set(p.cycleId, 'protected');
    if (newestFirst[0] && !keep.has(newestFirst[0].cycleId)) keep.set(newestFirst[0].cycleId, 'newest');
    const latestApp = newestFirst.find((p) => p.consistency === 'AppConsistent');
    if (latestApp && !keep.has(latestApp.cycleId)) keep.set(latestApp.cycleId, 'newestAppConsistent');

    const buckets = new Map<string, { tier: RetentionTier; chosen: P }>();
    for (const p of newestFirst) {
        const captured = Date.parse(p.capturedAt);
        const place = tierOf(tiers, captured, Math.max(0, nowMs - captured));
        if (!place) continue;
        if (place.tier === 'all') {
            if (!keep.has(p.cycleId)) keep.set(p.cycleId, 'all');
            continue;
        }
        const current = buckets.get(place.bucket);
        // Newest first: the first point seen is the newest; a later app-consistent one replaces a crash one.
        if (!current) buckets.set(place.bucket, { tier: place.tier, chosen: p });
        else if (current.chosen.consistency !== 'AppConsistent' && p.consistency === 'AppConsistent') {
            buckets.set(place.bucket, { tier: place.tier, chosen: p });
        }
    }
    for (const { tier, chosen } of buckets.values()) if (!keep.has(chosen.cycleId)) keep.set(chosen.cycleId, tier);
    return { keep, prune: newestFirst.filter((p) => !keep.has(p.cycleId)) };
}
