import { HvrError } from '../errors';
import { DailyWindow } from './replicationPolicy';

/**
 * A daily window in a site's local time, e.g. Hyper-V's default resynchronization window 18:30–06:00.
 * `end` before `start` crosses midnight; `start` equal to `end` means "always".
 */
export interface OffHoursWindow {
    /** HH:MM, 24-hour, local wall-clock time. */
    start: string;
    /** HH:MM, 24-hour, local wall-clock time. */
    end: string;
    /** IANA time zone, e.g. Europe/Paris. */
    timeZone: string;
}

const CLOCK = /^([01]\d|2[0-3]):([0-5]\d)$/;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
    let formatter = formatters.get(timeZone);
    if (!formatter) {
        try {
            formatter = new Intl.DateTimeFormat('en-US', {
                timeZone,
                hourCycle: 'h23',
                year: 'numeric',
                month: 'numeric',
                day: 'numeric',
                hour: 'numeric',
                minute: 'numeric',
                second: 'numeric',
            });
        } catch {
            throw new HvrError('VALIDATION_FAILED', `Time zone "${timeZone}" is not an IANA time zone.`, { timeZone });
        }
        formatters.set(timeZone, formatter);
    }
    return formatter;
}

function clockMinutes(field: 'start' | 'end', clock: string): number {
    const m = CLOCK.exec(clock);
    if (!m) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Off-hours window ${field} must be HH:MM (00:00–23:59); got "${clock}".`,
            {
                field,
                value: clock,
            },
        );
    }
    return Number(m[1]) * 60 + Number(m[2]);
}

/** The wall-clock time of `instantMs` in `timeZone`, as milliseconds of a UTC calendar ("local ms"). */
function localMs(instantMs: number, timeZone: string): number {
    const parts = formatterFor(timeZone).formatToParts(new Date(instantMs));
    const get = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value);
    const seconds = Math.floor(instantMs / 1000) * 1000;
    return (
        Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second')) +
        (instantMs - seconds)
    );
}

function offsetAt(instantMs: number, timeZone: string): number {
    return localMs(instantMs, timeZone) - instantMs;
}

/**
 * The instant at which the wall clock of `timeZone` shows `wallMs` (local ms).
 * A wall time that happens twice (the repeated hour when clocks go back) resolves to its first occurrence;
 * one that never happens (the skipped hour when clocks go forward) resolves to the instant the clock jumps,
 * i.e. the first instant whose wall-clock time is later than it.
 */
export function instantOfWallClock(wallMs: number, timeZone: string): number {
    // Real zones change offset at most once in any two days, so the offsets a day either side bracket it.
    const before = offsetAt(wallMs - DAY_MS, timeZone);
    const after = offsetAt(wallMs + DAY_MS, timeZone);
    const candidates = [wallMs - before, wallMs - after].filter((t) => localMs(t, timeZone) === wallMs);
    if (candidates.length > 0) return Math.min(...candidates);
    // In a gap: find the transition between the two candidate instants by bisection (to the second).
    let lo = Math.min(wallMs - before, wallMs - after);
    let hi = Math.max(wallMs - before, wallMs - after);
    const loOffset = offsetAt(lo, timeZone);
    while (hi - lo > 1000) {
        const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
        if (offsetAt(mid, timeZone) === loOffset) lo = mid;
        else hi = mid;
    }
    return hi;
}

interface Occurrence {
    startMs: number;
    endMs: number;
}

/** The occurrences of the window that open on local calendar days `firstDay`…`lastDay` relative to `nowMs`. */
function occurrences(nowMs: number, window: OffHoursWindow, firstDay: number, lastDay: number): Occurrence[] {
    const start = clockMinutes('start', window.start);
    const end = clockMinutes('end', window.end);
    const local = new Date(localMs(nowMs, window.timeZone));
    const out: Occurrence[] = [];
    for (let day = firstDay; day <= lastDay; day++) {
        const midnight = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + day);
        const startMs = instantOfWallClock(midnight + start * MINUTE_MS, window.timeZone);
        const endDay = end > start ? midnight : midnight + DAY_MS;
        const endMs = instantOfWallClock(endDay + end * MINUTE_MS, window.timeZone);
        out.push({ startMs, endMs });
    }
    return out;
}

function validate(window: OffHoursWindow): void {
    clockMinutes('start', window.start);
    clockMinutes('end', window.end);
    formatterFor(window.timeZone);
}

/**
 * Whether `now` is inside the window. Each local day has one occurrence, from `start` on that day to `end`
 * (on the next day when the window crosses midnight), both resolved as `instantOfWallClock` says, so a DST
 * change never opens or closes the window twice: on the night clocks go back an 18:30–06:00 window lasts one
 * hour longer, on the night they go forward one hour shorter.
 */
export function isWithinWindow(now: Date, window: OffHoursWindow): boolean {
    validate(window);
    if (window.start === window.end) return true;
    const t = now.getTime();
    return occurrences(t, window, -1, 0).some((o) => o.startMs <= t && t < o.endMs);
}

/**
 * The earliest start of the window at or after `now` (`now` itself for an "always" window). A scheduler that
 * finds a VM outside its window can sleep until then; inside the window, `isWithinWindow` is what counts.
 */
export function nextWindowStart(now: Date, window: OffHoursWindow): Date {
    validate(window);
    const t = now.getTime();
    if (window.start === window.end) return new Date(t);
    const next = occurrences(t, window, -1, 2)
        .map((o) => o.startMs)
        .filter((s) => s >= t)
        .sort((a, b) => a - b)[0];
    // Four consecutive local days always contain a start at or after now.
    return new Date(next ?? t);
}

/** The wall-clock minute of the day (0–1439) of `instant` in `timeZone`. */
export function localMinuteOfDay(instant: Date, timeZone: string): number {
    const local = new Date(localMs(instant.getTime(), timeZone));
    return local.getUTCHours() * 60 + local.getUTCMinutes();
}

/** `isWithinWindow` for a policy's window, whose time zone defaults to the site's (`fallbackTimeZone`). */
export function isWithinDailyWindow(instant: Date, window: DailyWindow, fallbackTimeZone = 'UTC'): boolean {
    return isWithinWindow(instant, {
        start: window.start,
        end: window.end,
        timeZone: window.timeZone ?? fallbackTimeZone,
    });
}
