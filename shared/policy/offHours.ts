import { HvrError } from '../errors';
import { DailyWindow } from './replicationPolicy';

function minutesOf(clock: string): number {
    const [h, m] = clock.split(':');
    return Number(h) * 60 + Number(m);
}

/** The wall-clock minute of the day (0–1439) of `instant` in `timeZone`. */
export function localMinuteOfDay(instant: Date, timeZone: string): number {
    let parts: Intl.DateTimeFormatPart[];
    try {
        parts = new Intl.DateTimeFormat('en-GB', {
            timeZone,
            hour: '2-digit',
            minute: '2-digit',
            hourCycle: 'h23',
        }).formatToParts(instant);
    } catch {
        throw new HvrError('VALIDATION_FAILED', `Time zone "${timeZone}" is not an IANA time zone.`, { timeZone });
    }
    const hour = Number(parts.find((p) => p.type === 'hour')?.value);
    const minute = Number(parts.find((p) => p.type === 'minute')?.value);
    return hour * 60 + minute;
}

/**
 * Whether `instant` falls in the daily window, read in the window's time zone (or `fallbackTimeZone`, the site's).
 * A window whose end is before its start crosses midnight (18:30–06:00 is the evening and the early morning).
 */
export function isWithinDailyWindow(instant: Date, window: DailyWindow, fallbackTimeZone = 'UTC'): boolean {
    const now = localMinuteOfDay(instant, window.timeZone ?? fallbackTimeZone);
    const start = minutesOf(window.start);
    const end = minutesOf(window.end);
    return start < end ? now >= start && now < end : now >= start || now < end;
}
