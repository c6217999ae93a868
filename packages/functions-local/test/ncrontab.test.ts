import { LocalPlatformError } from '../src';
import { parseNcrontab } from '../src/host/ncrontab';

const at = (iso: string): Date => new Date(iso);
function occurrences(expression: string, fromIso: string, count: number): string[] {
    const schedule = parseNcrontab(expression);
    const out: string[] = [];
    let cursor = at(fromIso);
    for (let i = 0; i < count; i++) {
        const next = schedule.next(cursor);
        if (!next) break;
        out.push(next.toISOString());
        cursor = next;
    }
    return out;
}

describe('NCRONTAB schedules (six fields, seconds first, UTC)', () => {
    it('runs every five minutes on the minute with a step on the minute field', () => {
        expect(occurrences('0 */5 * * * *', '2025-03-01T10:02:30Z', 3)).toEqual([
            '2025-03-01T10:05:00.000Z',
            '2025-03-01T10:10:00.000Z',
            '2025-03-01T10:15:00.000Z',
        ]);
    });

    it('never returns the base time itself, even when it is an occurrence', () => {
        expect(occurrences('0 0 * * * *', '2025-03-01T10:00:00Z', 1)).toEqual(['2025-03-01T11:00:00.000Z']);
    });

    it('ignores the milliseconds of the base time', () => {
        expect(occurrences('* * * * * *', '2025-03-01T10:00:00.900Z', 1)).toEqual(['2025-03-01T10:00:01.000Z']);
    });

    it('reads ranges, lists and stepped ranges', () => {
        expect(occurrences('0 0 9-11,15 * * *', '2025-03-01T00:00:00Z', 5)).toEqual([
            '2025-03-01T09:00:00.000Z',
            '2025-03-01T10:00:00.000Z',
            '2025-03-01T11:00:00.000Z',
            '2025-03-01T15:00:00.000Z',
            '2025-03-02T09:00:00.000Z',
        ]);
        expect(occurrences('10-40/10 0 0 * * *', '2025-03-01T00:00:00Z', 4)).toEqual([
            '2025-03-01T00:00:10.000Z',
            '2025-03-01T00:00:20.000Z',
            '2025-03-01T00:00:30.000Z',
            '2025-03-01T00:00:40.000Z',
        ]);
    });

    it('reads "start/step" as from start to the end of the field, as NCrontab does', () => {
        expect(occurrences('0 50/5 0 * * *', '2025-03-01T00:00:00Z', 3)).toEqual([
            '2025-03-01T00:50:00.000Z',
            '2025-03-01T00:55:00.000Z',
            '2025-03-02T00:50:00.000Z',
        ]);
    });

    it('runs at 02:30 on weekdays only, with day names', () => {
        // 2025-03-01 is a Saturday.
        expect(occurrences('0 30 2 * * mon-fri', '2025-03-01T00:00:00Z', 2)).toEqual([
            '2025-03-03T02:30:00.000Z',
            '2025-03-04T02:30:00.000Z',
        ]);
        expect(occurrences('0 30 2 * * 1-5', '2025-03-01T00:00:00Z', 1)).toEqual(['2025-03-03T02:30:00.000Z']);
    });

    it('requires both day of month and day of week to match (NCrontab, unlike Vixie cron)', () => {
        // The 13th that is a Friday: June 2025.
        expect(occurrences('0 0 0 13 * fri', '2025-01-01T00:00:00Z', 1)).toEqual(['2025-06-13T00:00:00.000Z']);
    });

    it('skips months without the day and finds leap days', () => {
        expect(occurrences('0 0 0 31 * *', '2025-01-31T00:00:00Z', 2)).toEqual([
            '2025-03-31T00:00:00.000Z',
            '2025-05-31T00:00:00.000Z',
        ]);
        expect(occurrences('0 0 12 29 feb *', '2025-01-01T00:00:00Z', 1)).toEqual(['2028-02-29T12:00:00.000Z']);
    });

    it('crosses a year end', () => {
        expect(occurrences('0 0 0 1 jan *', '2025-06-01T00:00:00Z', 1)).toEqual(['2026-01-01T00:00:00.000Z']);
    });

    it('reports no occurrence for a date that never comes', () => {
        expect(parseNcrontab('0 0 0 30 feb *').next(at('2025-01-01T00:00:00Z'))).toBeUndefined();
    });

    it('says whether an instant is an occurrence', () => {
        const schedule = parseNcrontab('0 */15 * * * *');
        expect(schedule.matches(at('2025-03-01T10:45:00Z'))).toBe(true);
        expect(schedule.matches(at('2025-03-01T10:46:00Z'))).toBe(false);
    });

    it('resolves a %SETTING% schedule from the app settings', () => {
        const schedule = parseNcrontab('%RESYNC_SCHEDULE%', { RESYNC_SCHEDULE: '0 0 * * * *' });
        expect(schedule.expression).toBe('0 0 * * * *');
        expect(() => parseNcrontab('%RESYNC_SCHEDULE%', {})).toThrow(/RESYNC_SCHEDULE/);
    });

    it.each([
        ['0 */5 * * *', /expected 6 fields.*got 5/],
        ['0 0 0 0 * * *', /got 7/],
        ['60 * * * * *', /second value 60 is outside 0-59/],
        ['0 0 24 * * *', /hour value 24 is outside 0-23/],
        ['0 0 0 0 * *', /day value 0 is outside 1-31/],
        ['0 0 0 * 13 *', /month value 13/],
        ['0 0 0 * * 7', /day of week value 7 is outside 0-6/],
        ['*/0 * * * * *', /step "0" in second field/],
        ['0 5-1 * * * *', /runs backwards/],
        ['0 1,,2 * * * *', /empty list item/],
        ['0 0 0 * * funday', /day of week value "funday" is not a number/],
        ['0 0 0 * * mo', /not a number/],
        ['0 a * * * *', /minute value "a" is not a number/],
        ['0 1/2/3 * * * *', /more than one "\/"/],
        ['00:05:00', /expected 6 fields/],
    ])('rejects %s with a message naming the value', (expression, message) => {
        let caught: unknown;
        try {
            parseNcrontab(expression);
        } catch (err) {
            caught = err;
        }
        expect(caught).toBeInstanceOf(LocalPlatformError);
        expect((caught as LocalPlatformError).code).toBe('VALIDATION_FAILED');
        expect((caught as LocalPlatformError).message).toMatch(message);
    });
});
