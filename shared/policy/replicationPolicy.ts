import { HvrError } from '../errors';
import { retentionHorizonMs, RetentionTiers } from '../replica/retentionSchedule';

/** How often the provider ships a replication cycle, as Hyper-V offers it: 30 seconds, 5 or 15 minutes. */
export const COPY_FREQUENCIES_SECONDS = [30, 300, 900] as const;
export type CopyFrequencySeconds = (typeof COPY_FREQUENCIES_SECONDS)[number];

/** ASR caps retention at 24 hours for Hyper-V to Azure; we allow up to 72. */
export const MAX_RECOVERY_POINT_RETENTION_HOURS = 72;
export const MAX_APP_CONSISTENT_FREQUENCY_HOURS = 12;

/** Hyper-V's default off-hours window for resynchronization: 18:30 to 06:00, local time. */
export const DEFAULT_OFF_HOURS_WINDOW = { start: '18:30', end: '06:00' } as const;

/** A daily window in local time; `end` before `start` means it crosses midnight. */
export interface DailyWindow {
    /** HH:MM, 24-hour. */
    start: string;
    /** HH:MM, 24-hour. */
    end: string;
    /** IANA time zone (e.g. Europe/Paris); absent means the site's time zone. */
    timeZone?: string;
}

export interface UploadBandwidth {
    /** Mbit/s during work hours (outside the off-hours window); absent means unlimited. */
    workHoursMbps?: number;
    /** Mbit/s during the off-hours window; absent means unlimited. */
    offHoursMbps?: number;
}

/**
 * Tiered retention of recovery points (docs/api.md "Retention"): every point for `allPointsHours`, then one per
 * hour, per day, per week up to each tier's end; `minimumRetentionDays` makes every point undeletable (by the
 * app, and in Azure by a blob immutability policy on its snapshots) until it is that old.
 */
export interface RecoveryPointRetention extends RetentionTiers {
    minimumRetentionDays: number;
}

/** The bounds of each retention setting (the schedule itself has no cap). */
export const RETENTION_LIMITS = {
    allPointsHours: 72,
    hourlyHours: 24 * 14,
    dailyDays: 400,
    weeklyWeeks: 520,
    minimumRetentionDays: 400,
} as const;

/** A replication policy: the settings applied to every VM protected with it. */
export interface ReplicationPolicy {
    name: string;
    description?: string;
    copyFrequencySeconds: CopyFrequencySeconds;
    /** How long every recovery point is kept (ASR's setting); 0 keeps only the latest. Equals retention.allPointsHours. */
    recoveryPointRetentionHours: number;
    /** The tiers beyond `recoveryPointRetentionHours`; absent: ASR's single window, nothing undeletable. */
    retention?: RecoveryPointRetention;
    /** Hours between app-consistent snapshots (1–12), or 0 for none (crash-consistent only). */
    appConsistentSnapshotFrequencyHours: number;
    /** 'Immediately', or the ISO 8601 instant at which initial replication starts. */
    initialReplicationStart: string;
    /** When scheduled resynchronization may run. */
    offHoursWindow: DailyWindow;
    uploadBandwidth: UploadBandwidth;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;
const CLOCK_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)$/;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

function invalid(field: string, value: unknown, rule: string): HvrError {
    const shown = value === undefined ? 'nothing' : JSON.stringify(value);
    return new HvrError('VALIDATION_FAILED', `${field} ${rule}; got ${shown}.`, { field, value });
}

/** Whether `timeZone` is an IANA zone this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
    try {
        new Intl.DateTimeFormat('en-US', { timeZone });
        return true;
    } catch {
        return false;
    }
}

/** Validates a policy name (also used for URL path segments). */
export function validatePolicyName(name: unknown): string {
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
        throw invalid('name', name, 'must be 1–80 letters, digits, ".", "_" or "-", starting with a letter or digit');
    }
    return name;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalBandwidth(field: string, value: unknown): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 100_000) {
        throw invalid(field, value, 'must be a number of Mbit/s above 0 and at most 100000 (omit it for unlimited)');
    }
    return value;
}

/** Validates a daily window (HH:MM–HH:MM, optional IANA time zone). */
export function validateDailyWindow(field: string, value: unknown): DailyWindow {
    if (!isObject(value)) throw invalid(field, value, 'must be an object { start, end, timeZone? }');
    const { start, end, timeZone } = value;
    if (typeof start !== 'string' || !CLOCK_PATTERN.test(start)) {
        throw invalid(`${field}.start`, start, 'must be a 24-hour time HH:MM');
    }
    if (typeof end !== 'string' || !CLOCK_PATTERN.test(end)) {
        throw invalid(`${field}.end`, end, 'must be a 24-hour time HH:MM');
    }
    if (start === end) throw invalid(`${field}.end`, end, 'must differ from start (an empty window never opens)');
    if (timeZone !== undefined && (typeof timeZone !== 'string' || !isValidTimeZone(timeZone))) {
        throw invalid(`${field}.timeZone`, timeZone, 'must be an IANA time zone such as Europe/Paris');
    }
    return timeZone === undefined ? { start, end } : { start, end, timeZone };
}

/**
 * Checks a policy as sent by a client and returns it with defaults filled in. Throws VALIDATION_FAILED naming
 * the first field that is wrong and the value it had.
 */
export function validateReplicationPolicy(input: unknown, nameFromPath?: string): ReplicationPolicy {
    if (!isObject(input)) throw invalid('body', input, 'must be a JSON object');
    const name = validatePolicyName(nameFromPath ?? input.name);
    if (nameFromPath !== undefined && input.name !== undefined && input.name !== nameFromPath) {
        throw invalid('name', input.name, `must match the name in the URL ("${nameFromPath}")`);
    }
    const description = input.description;
    if (description !== undefined && (typeof description !== 'string' || description.length > 1024)) {
        throw invalid('description', description, 'must be a string of at most 1024 characters');
    }

    const copyFrequency = input.copyFrequencySeconds ?? 300;
    if (!COPY_FREQUENCIES_SECONDS.includes(copyFrequency as CopyFrequencySeconds)) {
        throw invalid('copyFrequencySeconds', copyFrequency, 'must be 30, 300 or 900');
    }

    const retention = input.recoveryPointRetentionHours ?? 2;
    if (
        typeof retention !== 'number' ||
        !Number.isInteger(retention) ||
        retention < 0 ||
        retention > MAX_RECOVERY_POINT_RETENTION_HOURS
    ) {
        throw invalid(
            'recoveryPointRetentionHours',
            retention,
            `must be a whole number of hours from 0 to ${MAX_RECOVERY_POINT_RETENTION_HOURS}`,
        );
    }

    const retentionTiers = validateRetention(input.retention, input.recoveryPointRetentionHours, retention);

    const appConsistent = input.appConsistentSnapshotFrequencyHours ?? 0;
    if (
        typeof appConsistent !== 'number' ||
        !Number.isInteger(appConsistent) ||
        appConsistent < 0 ||
        appConsistent > MAX_APP_CONSISTENT_FREQUENCY_HOURS
    ) {
        throw invalid(
            'appConsistentSnapshotFrequencyHours',
            appConsistent,
            `must be a whole number of hours from 1 to ${MAX_APP_CONSISTENT_FREQUENCY_HOURS}, or 0 for off`,
        );
    }
    const keptHours = retentionTiers ? retentionHorizonMs(retentionTiers) / 3600_000 : retention;
    if (appConsistent > 0 && keptHours > 0 && appConsistent > keptHours) {
        throw invalid(
            'appConsistentSnapshotFrequencyHours',
            appConsistent,
            `must not exceed how long points are kept (${keptHours} h), or no app-consistent point would be kept`,
        );
    }

    const start = input.initialReplicationStart ?? 'Immediately';
    if (
        start !== 'Immediately' &&
        (typeof start !== 'string' || !ISO_INSTANT.test(start) || Number.isNaN(Date.parse(start)))
    ) {
        throw invalid(
            'initialReplicationStart',
            start,
            'must be "Immediately" or an ISO 8601 instant with a time zone (e.g. 2025-01-31T22:00:00Z)',
        );
    }

    const offHoursWindow = validateDailyWindow(
        'offHoursWindow',
        input.offHoursWindow ?? { ...DEFAULT_OFF_HOURS_WINDOW },
    );

    const bandwidthInput = input.uploadBandwidth ?? {};
    if (!isObject(bandwidthInput)) {
        throw invalid('uploadBandwidth', bandwidthInput, 'must be an object { workHoursMbps?, offHoursMbps? }');
    }
    const uploadBandwidth: UploadBandwidth = {};
    const work = optionalBandwidth('uploadBandwidth.workHoursMbps', bandwidthInput.workHoursMbps);
    const off = optionalBandwidth('uploadBandwidth.offHoursMbps', bandwidthInput.offHoursMbps);
    if (work !== undefined) uploadBandwidth.workHoursMbps = work;
    if (off !== undefined) uploadBandwidth.offHoursMbps = off;

    const known = new Set([
        'name',
        'description',
        'copyFrequencySeconds',
        'recoveryPointRetentionHours',
        'appConsistentSnapshotFrequencyHours',
        'initialReplicationStart',
        'offHoursWindow',
        'uploadBandwidth',
        'retention',
    ]);
    const unknown = Object.keys(input).find((k) => !known.has(k));
    if (unknown !== undefined) throw invalid(unknown, input[unknown], 'is not a replication policy setting');

    const policy: ReplicationPolicy = {
        name,
        copyFrequencySeconds: copyFrequency as CopyFrequencySeconds,
        recoveryPointRetentionHours: retention,
        appConsistentSnapshotFrequencyHours: appConsistent,
        initialReplicationStart: start,
        offHoursWindow,
        uploadBandwidth,
    };
    if (typeof description === 'string') policy.description = description;
    if (retentionTiers) {
        policy.retention = retentionTiers;
        policy.recoveryPointRetentionHours = retentionTiers.allPointsHours;
    }
    return policy;
}

/**
 * Checks `retention`: whole numbers within RETENTION_LIMITS, each tier either off (0) or ending later than the
 * tiers before it, and `recoveryPointRetentionHours`, when also given, equal to `allPointsHours`.
 */
function validateRetention(
    value: unknown,
    explicitHours: unknown,
    defaultHours: number,
): RecoveryPointRetention | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isObject(value)) {
        throw invalid(
            'retention',
            value,
            'must be an object { allPointsHours, hourlyHours, dailyDays, weeklyWeeks, minimumRetentionDays }',
        );
    }
    const known = Object.keys(RETENTION_LIMITS);
    const stray = Object.keys(value).find((k) => !known.includes(k));
    if (stray !== undefined) throw invalid(`retention.${stray}`, value[stray], 'is not a retention setting');
    const read = (key: keyof typeof RETENTION_LIMITS, fallback: number): number => {
        const v = value[key] ?? fallback;
        const max = RETENTION_LIMITS[key];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
            throw invalid(`retention.${key}`, v, `must be a whole number from 0 to ${max}`);
        }
        return v;
    };
    const tiers: RecoveryPointRetention = {
        allPointsHours: read('allPointsHours', defaultHours),
        hourlyHours: read('hourlyHours', 0),
        dailyDays: read('dailyDays', 0),
        weeklyWeeks: read('weeklyWeeks', 0),
        minimumRetentionDays: read('minimumRetentionDays', 0),
    };
    if (explicitHours !== undefined && explicitHours !== tiers.allPointsHours) {
        throw invalid(
            'recoveryPointRetentionHours',
            explicitHours,
            `must equal retention.allPointsHours (${tiers.allPointsHours}) when both are given`,
        );
    }
    const ends: [string, number][] = [
        ['allPointsHours', tiers.allPointsHours],
        ['hourlyHours', tiers.hourlyHours],
        ['dailyDays', tiers.dailyDays * 24],
        ['weeklyWeeks', tiers.weeklyWeeks * 24 * 7],
    ];
    let before = 0;
    let beforeName = '';
    for (const [name, endHours] of ends) {
        if (endHours === 0) continue;
        if (endHours <= before) {
            throw invalid(
                `retention.${name}`,
                tiers[name as keyof RecoveryPointRetention],
                `must end later than retention.${beforeName} (${before} h), or be 0 to turn the tier off`,
            );
        }
        before = endHours;
        beforeName = name;
    }
    return tiers;
}
