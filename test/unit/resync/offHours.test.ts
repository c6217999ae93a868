import fc from 'fast-check';
import { HvrError } from '../../../shared/errors';
import {
    instantOfWallClock,
    isWithinDailyWindow,
    isWithinWindow,
    localMinuteOfDay,
    nextWindowStart,
    OffHoursWindow,
} from '../../../shared/policy/offHours';

const at = (iso: string): Date => new Date(iso);
const paris: OffHoursWindow = { start: '18:30', end: '06:00', timeZone: 'Europe/Paris' };

describe('off-hours window', () => {
    it('opens at 18:30 and closes at 06:00 local time, across midnight', () => {
        // January: Paris is UTC+1.
        expect(isWithinWindow(at('2025-01-15T17:29:59Z'), paris)).toBe(false);
        expect(isWithinWindow(at('2025-01-15T17:30:00Z'), paris)).toBe(true);
        expect(isWithinWindow(at('2025-01-15T23:00:00Z'), paris)).toBe(true);
        expect(isWithinWindow(at('2025-01-16T04:59:59Z'), paris)).toBe(true);
        expect(isWithinWindow(at('2025-01-16T05:00:00Z'), paris)).toBe(false);
        expect(isWithinWindow(at('2025-01-16T11:00:00Z'), paris)).toBe(false);
    });

    it('reads the same wall-clock window in summer time', () => {
        // July: Paris is UTC+2, so 18:30 local is 16:30Z.
        expect(isWithinWindow(at('2025-07-15T16:29:00Z'), paris)).toBe(false);
        expect(isWithinWindow(at('2025-07-15T16:30:00Z'), paris)).toBe(true);
        expect(isWithinWindow(at('2025-07-16T03:59:00Z'), paris)).toBe(true);
        expect(isWithinWindow(at('2025-07-16T04:00:00Z'), paris)).toBe(false);
    });

    it('handles a window that does not cross midnight', () => {
        const w: OffHoursWindow = { start: '01:00', end: '05:00', timeZone: 'UTC' };
        expect(isWithinWindow(at('2025-01-15T00:59:00Z'), w)).toBe(false);
        expect(isWithinWindow(at('2025-01-15T01:00:00Z'), w)).toBe(true);
        expect(isWithinWindow(at('2025-01-15T05:00:00Z'), w)).toBe(false);
        expect(isWithinWindow(at('2025-01-15T18:00:00Z'), w)).toBe(false);
    });

    it('treats start equal to end as always open', () => {
        const always: OffHoursWindow = { start: '00:00', end: '00:00', timeZone: 'America/New_York' };
        expect(isWithinWindow(at('2025-03-09T07:30:00Z'), always)).toBe(true);
        expect(isWithinWindow(at('2025-06-01T15:00:00Z'), { ...always, start: '12:00', end: '12:00' })).toBe(true);
        expect(nextWindowStart(at('2025-06-01T15:00:00Z'), always).toISOString()).toBe('2025-06-01T15:00:00.000Z');
    });

    it('works in a zone without DST (Asia/Kolkata, UTC+05:30)', () => {
        const w: OffHoursWindow = { ...paris, timeZone: 'Asia/Kolkata' };
        expect(isWithinWindow(at('2025-06-01T12:59:00Z'), w)).toBe(false);
        expect(isWithinWindow(at('2025-06-01T13:00:00Z'), w)).toBe(true);
        expect(isWithinWindow(at('2025-06-02T00:29:00Z'), w)).toBe(true);
        expect(isWithinWindow(at('2025-06-02T00:30:00Z'), w)).toBe(false);
        expect(nextWindowStart(at('2025-06-01T02:00:00Z'), w).toISOString()).toBe('2025-06-01T13:00:00.000Z');
        // Inside tonight's window, the next start is tomorrow evening.
        expect(nextWindowStart(at('2025-06-01T14:30:00Z'), w).toISOString()).toBe('2025-06-02T13:00:00.000Z');
    });

    describe('Europe/Paris, clocks forward (2025-03-30 02:00 → 03:00 local, 01:00Z)', () => {
        it('lasts one hour less on the short night', () => {
            // Opens 29 March 18:30 CET (17:30Z), closes 30 March 06:00 CEST (04:00Z): 10.5 hours.
            expect(isWithinWindow(at('2025-03-29T17:30:00Z'), paris)).toBe(true);
            expect(isWithinWindow(at('2025-03-30T03:59:00Z'), paris)).toBe(true);
            expect(isWithinWindow(at('2025-03-30T04:00:00Z'), paris)).toBe(false);
        });

        it('opens a window whose start falls in the skipped hour when the clock jumps', () => {
            const w: OffHoursWindow = { start: '02:30', end: '05:00', timeZone: 'Europe/Paris' };
            expect(isWithinWindow(at('2025-03-30T00:59:59Z'), w)).toBe(false);
            expect(isWithinWindow(at('2025-03-30T01:00:00Z'), w)).toBe(true);
            expect(nextWindowStart(at('2025-03-30T00:00:00Z'), w).toISOString()).toBe('2025-03-30T01:00:00.000Z');
            // The next day is ordinary again: 02:30 CEST is 00:30Z.
            expect(nextWindowStart(at('2025-03-30T06:00:00Z'), w).toISOString()).toBe('2025-03-31T00:30:00.000Z');
        });

        it('resolves a skipped wall-clock time to the instant of the jump', () => {
            const wall = Date.UTC(2025, 2, 30, 2, 30);
            expect(new Date(instantOfWallClock(wall, 'Europe/Paris')).toISOString()).toBe('2025-03-30T01:00:00.000Z');
        });
    });

    describe('Europe/Paris, clocks back (2025-10-26 03:00 → 02:00 local, 01:00Z)', () => {
        it('lasts one hour more on the long night', () => {
            // Opens 25 October 18:30 CEST (16:30Z), closes 26 October 06:00 CET (05:00Z).
            expect(isWithinWindow(at('2025-10-25T16:30:00Z'), paris)).toBe(true);
            expect(isWithinWindow(at('2025-10-26T04:59:00Z'), paris)).toBe(true);
            expect(isWithinWindow(at('2025-10-26T05:00:00Z'), paris)).toBe(false);
        });

        it('does not reopen when a window ending in the repeated hour sees that hour again', () => {
            const w: OffHoursWindow = { start: '18:30', end: '02:30', timeZone: 'Europe/Paris' };
            // The first 02:30 (CEST) is 00:30Z; the second pass over 02:00–02:59 (CET) is 01:00Z–02:00Z.
            expect(isWithinWindow(at('2025-10-26T00:29:00Z'), w)).toBe(true);
            expect(isWithinWindow(at('2025-10-26T00:30:00Z'), w)).toBe(false);
            expect(isWithinWindow(at('2025-10-26T01:15:00Z'), w)).toBe(false);
        });

        it('does not close when a window starting in the repeated hour sees that hour again', () => {
            const w: OffHoursWindow = { start: '02:30', end: '06:00', timeZone: 'Europe/Paris' };
            expect(isWithinWindow(at('2025-10-26T00:29:00Z'), w)).toBe(false);
            expect(isWithinWindow(at('2025-10-26T00:30:00Z'), w)).toBe(true);
            expect(isWithinWindow(at('2025-10-26T01:10:00Z'), w)).toBe(true);
            expect(isWithinWindow(at('2025-10-26T04:59:00Z'), w)).toBe(true);
        });

        it('resolves a repeated wall-clock time to its first occurrence', () => {
            const wall = Date.UTC(2025, 9, 26, 2, 30);
            expect(new Date(instantOfWallClock(wall, 'Europe/Paris')).toISOString()).toBe('2025-10-26T00:30:00.000Z');
        });
    });

    describe('America/New_York', () => {
        it('clocks forward (2025-03-09 02:00 EST → 03:00 EDT): the default window still closes at 06:00 EDT', () => {
            const w: OffHoursWindow = { ...paris, timeZone: 'America/New_York' };
            // Opens 8 March 18:30 EST (23:30Z), closes 9 March 06:00 EDT (10:00Z).
            expect(isWithinWindow(at('2025-03-08T23:29:00Z'), w)).toBe(false);
            expect(isWithinWindow(at('2025-03-08T23:30:00Z'), w)).toBe(true);
            expect(isWithinWindow(at('2025-03-09T09:59:00Z'), w)).toBe(true);
            expect(isWithinWindow(at('2025-03-09T10:00:00Z'), w)).toBe(false);
            expect(nextWindowStart(at('2025-03-09T12:00:00Z'), w).toISOString()).toBe('2025-03-09T22:30:00.000Z');
        });

        it('a window lying wholly in the skipped hour does not open that day', () => {
            const w: OffHoursWindow = { start: '02:00', end: '02:45', timeZone: 'America/New_York' };
            expect(isWithinWindow(at('2025-03-09T06:59:00Z'), w)).toBe(false);
            expect(isWithinWindow(at('2025-03-09T07:00:00Z'), w)).toBe(false);
            expect(isWithinWindow(at('2025-03-09T07:30:00Z'), w)).toBe(false);
            // The day before it opened at 02:00 EST (07:00Z).
            expect(isWithinWindow(at('2025-03-08T07:10:00Z'), w)).toBe(true);
        });

        it('clocks back (2025-11-02 02:00 EDT → 01:00 EST): a window in the repeated hour opens once', () => {
            const w: OffHoursWindow = { start: '01:30', end: '01:45', timeZone: 'America/New_York' };
            expect(isWithinWindow(at('2025-11-02T05:35:00Z'), w)).toBe(true); // 01:35 EDT
            expect(isWithinWindow(at('2025-11-02T06:35:00Z'), w)).toBe(false); // 01:35 EST, the second pass
            expect(nextWindowStart(at('2025-11-02T05:00:00Z'), w).toISOString()).toBe('2025-11-02T05:30:00.000Z');
        });
    });

    it('agrees with the minute-of-day rule wherever there is no DST, and the next start is always open', () => {
        const w = (start: number, end: number): OffHoursWindow => ({
            start: `${String(Math.floor(start / 60)).padStart(2, '0')}:${String(start % 60).padStart(2, '0')}`,
            end: `${String(Math.floor(end / 60)).padStart(2, '0')}:${String(end % 60).padStart(2, '0')}`,
            timeZone: 'Asia/Tokyo',
        });
        fc.assert(
            fc.property(
                fc.integer({ min: 0, max: 1439 }),
                fc.integer({ min: 0, max: 1439 }),
                fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2027, 0, 1) }),
                (start, end, t) => {
                    const window = w(start, end);
                    const now = new Date(Math.floor(t / 60_000) * 60_000);
                    const minute = localMinuteOfDay(now, 'Asia/Tokyo');
                    const expected =
                        start === end
                            ? true
                            : start < end
                              ? minute >= start && minute < end
                              : minute >= start || minute < end;
                    expect(isWithinWindow(now, window)).toBe(expected);
                    const next = nextWindowStart(now, window);
                    expect(next.getTime()).toBeGreaterThanOrEqual(now.getTime());
                    expect(next.getTime() - now.getTime()).toBeLessThanOrEqual(86_400_000);
                    expect(isWithinWindow(next, window)).toBe(true);
                },
            ),
            { numRuns: 300 },
        );
    });

    it('rejects a clock that is not HH:MM and a zone that is not IANA, naming the value', () => {
        expect(() => isWithinWindow(at('2025-01-01T00:00:00Z'), { ...paris, start: '24:00' })).toThrow(/"24:00"/);
        expect(() => isWithinWindow(at('2025-01-01T00:00:00Z'), { ...paris, end: '6:00' })).toThrow(HvrError);
        let caught: unknown;
        try {
            nextWindowStart(at('2025-01-01T00:00:00Z'), { ...paris, timeZone: 'Mars/Olympus' });
        } catch (err) {
            caught = err;
        }
        expect(caught).toBeInstanceOf(HvrError);
        expect((caught as HvrError).code).toBe('VALIDATION_FAILED');
        expect((caught as HvrError).message).toContain('Mars/Olympus');
    });

    it("reads a policy's window in the site's time zone when the window names none", () => {
        const policyWindow = { start: '18:30', end: '06:00' };
        expect(isWithinDailyWindow(at('2025-01-15T17:45:00Z'), policyWindow, 'Europe/Paris')).toBe(true);
        expect(isWithinDailyWindow(at('2025-01-15T17:45:00Z'), policyWindow, 'America/New_York')).toBe(false);
    });
});
