import { LocalPlatformError } from '../errors';

/**
 * One field of a schedule: the set of values it allows.
 * Ranges follow NCrontab, the library the Functions timer trigger uses.
 */
interface FieldSpec {
    name: string;
    min: number;
    max: number;
    names?: readonly string[];
}

const FIELDS: readonly FieldSpec[] = [
    { name: 'second', min: 0, max: 59 },
    { name: 'minute', min: 0, max: 59 },
    { name: 'hour', min: 0, max: 23 },
    { name: 'day', min: 1, max: 31 },
    {
        name: 'month',
        min: 1,
        max: 12,
        names: [
            'january',
            'february',
            'march',
            'april',
            'may',
            'june',
            'july',
            'august',
            'september',
            'october',
            'november',
            'december',
        ],
    },
    {
        name: 'day of week',
        min: 0,
        max: 6,
        names: ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'],
    },
];

/** A parsed six-field NCRONTAB schedule (`{second} {minute} {hour} {day} {month} {day-of-week}`), in UTC. */
export interface CronSchedule {
    readonly expression: string;
    /** The first occurrence strictly after `after` (whole seconds), or undefined if none within 5 years. */
    next(after: Date): Date | undefined;
    /** Whether `at` (to the second) is an occurrence. */
    matches(at: Date): boolean;
}

function invalid(expression: string, message: string, details: Record<string, unknown> = {}): LocalPlatformError {
    return new LocalPlatformError('VALIDATION_FAILED', `Invalid NCRONTAB schedule "${expression}": ${message}`, {
        expression,
        ...details,
    });
}

function parseValue(expression: string, field: FieldSpec, token: string): number {
    if (/^\d+$/.test(token)) {
        const value = Number(token);
        if (value < field.min || value > field.max) {
            throw invalid(expression, `${field.name} value ${token} is outside ${field.min}-${field.max}`, {
                field: field.name,
                value: token,
            });
        }
        return value;
    }
    const lower = token.toLowerCase();
    // NCrontab accepts any prefix of a name; three letters is the shortest that is never ambiguous.
    const index = field.names && lower.length >= 3 ? field.names.findIndex((n) => n.startsWith(lower)) : -1;
    if (index < 0) {
        const hint = field.names ? ` or a name such as ${field.names[0]!.slice(0, 3)}` : '';
        throw invalid(expression, `${field.name} value "${token}" is not a number${hint}`, {
            field: field.name,
            value: token,
        });
    }
    return index + field.min;
}

/** Parses one field (`*`, `5`, `1-5`, `*\/15`, `10-40/10`, `1,3,5`, `mon-fri`) into its allowed values. */
function parseField(expression: string, field: FieldSpec, text: string): Set<number> {
    const values = new Set<number>();
    for (const part of text.split(',')) {
        if (part === '')
            throw invalid(expression, `empty list item in ${field.name} field "${text}"`, { field: field.name });
        const [rangeText, stepText, extra] = part.split('/');
        if (extra !== undefined) {
            throw invalid(expression, `more than one "/" in ${field.name} field item "${part}"`, { field: field.name });
        }
        let step = 1;
        if (stepText !== undefined) {
            if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
                throw invalid(expression, `step "${stepText}" in ${field.name} field must be a whole number ≥ 1`, {
                    field: field.name,
                    value: stepText,
                });
            }
            step = Number(stepText);
        }
        let first: number;
        let last: number;
        if (rangeText === '*') {
            first = field.min;
            last = field.max;
        } else if (rangeText !== undefined && rangeText.includes('-')) {
            const [a, b, more] = rangeText.split('-');
            if (!a || !b || more !== undefined) {
                throw invalid(expression, `range "${rangeText}" in ${field.name} field must be "first-last"`, {
                    field: field.name,
                    value: rangeText,
                });
            }
            first = parseValue(expression, field, a);
            last = parseValue(expression, field, b);
            if (last < first) {
                throw invalid(expression, `range "${rangeText}" in ${field.name} field runs backwards`, {
                    field: field.name,
                    value: rangeText,
                });
            }
        } else {
            first = parseValue(expression, field, rangeText ?? '');
            // As in NCrontab, "5/15" means from 5 to the end of the field in steps of 15.
            last = stepText === undefined ? first : field.max;
        }
        for (let v = first; v <= last; v += step) values.add(v);
    }
    return values;
}

const SEARCH_LIMIT_MS = 5 * 366 * 24 * 3600 * 1000;

/**
 * Parses a Functions timer schedule. Six fields, seconds first, evaluated in UTC; the day-of-month and
 * day-of-week fields must both match, as NCrontab (not Vixie cron) does. A `%NAME%` schedule is resolved
 * from `settings` first, as the Functions host resolves binding expressions.
 */
export function parseNcrontab(expression: string, settings: Record<string, string | undefined> = {}): CronSchedule {
    let text = expression.trim();
    const settingRef = /^%([^%]+)%$/.exec(text);
    if (settingRef) {
        const resolved = settings[settingRef[1]!];
        if (resolved === undefined || resolved === '') {
            throw new LocalPlatformError(
                'CONFIG_MISSING',
                `The timer schedule names app setting ${settingRef[1]}, which is not set.`,
                {
                    setting: settingRef[1],
                },
            );
        }
        text = resolved.trim();
    }
    const parts = text.split(/\s+/).filter((p) => p !== '');
    if (parts.length !== 6) {
        throw invalid(
            text,
            `expected 6 fields ({second} {minute} {hour} {day} {month} {day-of-week}), got ${parts.length}`,
            { fields: parts.length },
        );
    }
    const sets = parts.map((p, i) => parseField(text, FIELDS[i]!, p));
    const [seconds, minutes, hours, days, months, weekdays] = sets as [
        Set<number>,
        Set<number>,
        Set<number>,
        Set<number>,
        Set<number>,
        Set<number>,
    ];
    const dayMatches = (d: Date): boolean =>
        months.has(d.getUTCMonth() + 1) && days.has(d.getUTCDate()) && weekdays.has(d.getUTCDay());
    const matches = (at: Date): boolean =>
        dayMatches(at) &&
        hours.has(at.getUTCHours()) &&
        minutes.has(at.getUTCMinutes()) &&
        seconds.has(at.getUTCSeconds());
    const sortedSeconds = [...seconds].sort((a, b) => a - b);
    const sortedMinutes = [...minutes].sort((a, b) => a - b);
    const sortedHours = [...hours].sort((a, b) => a - b);

    const next = (after: Date): Date | undefined => {
        const start = Math.floor(after.getTime() / 1000) * 1000 + 1000;
        const limit = start + SEARCH_LIMIT_MS;
        // Walk day by day to a matching date, then pick the first matching time of day on it.
        let day = new Date(start);
        day.setUTCHours(0, 0, 0, 0);
        while (day.getTime() < limit) {
            if (dayMatches(day)) {
                const sameDay = day.getTime() <= start && start < day.getTime() + 86_400_000;
                const from = sameDay ? new Date(start) : day;
                const found = firstTimeOnDay(day, from, sortedHours, sortedMinutes, sortedSeconds);
                if (found) return found;
            }
            day = new Date(day.getTime() + 86_400_000);
        }
        return undefined;
    };
    return { expression: text, next, matches };
}

function firstTimeOnDay(
    day: Date,
    from: Date,
    hours: number[],
    minutes: number[],
    seconds: number[],
): Date | undefined {
    const base = day.getTime();
    const fromOffset = from.getTime() - base;
    for (const h of hours) {
        if ((h + 1) * 3_600_000 <= fromOffset) continue;
        for (const m of minutes) {
            if (h * 3_600_000 + (m + 1) * 60_000 <= fromOffset) continue;
            for (const s of seconds) {
                const offset = h * 3_600_000 + m * 60_000 + s * 1000;
                if (offset >= fromOffset) return new Date(base + offset);
            }
        }
    }
    return undefined;
}
