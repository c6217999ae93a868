import { HvrError } from '../../../shared/errors';
import { validateReplicationPolicy } from '../../../shared/policy/replicationPolicy';

function rejection(input: unknown, name?: string): HvrError {
    try {
        validateReplicationPolicy(input, name);
    } catch (err) {
        if (err instanceof HvrError) return err;
        throw err;
    }
    throw new Error('expected VALIDATION_FAILED');
}

describe('replication policy validation', () => {
    it('fills ASR-like defaults: 5 min copies, Hyper-V off-hours 18:30–06:00, start now, unlimited bandwidth', () => {
        expect(validateReplicationPolicy({ name: 'gold' })).toEqual({
            name: 'gold',
            copyFrequencySeconds: 300,
            recoveryPointRetentionHours: 2,
            appConsistentSnapshotFrequencyHours: 0,
            initialReplicationStart: 'Immediately',
            offHoursWindow: { start: '18:30', end: '06:00' },
            uploadBandwidth: {},
        });
    });

    it("accepts a policy keeping 30 days in tiers, with ASR's 24 hours as its first tier", () => {
        const policy = validateReplicationPolicy({
            name: 'month',
            retention: { allPointsHours: 24, hourlyHours: 72, dailyDays: 30, weeklyWeeks: 12, minimumRetentionDays: 7 },
            appConsistentSnapshotFrequencyHours: 12,
        });
        expect(policy.retention).toEqual({
            allPointsHours: 24,
            hourlyHours: 72,
            dailyDays: 30,
            weeklyWeeks: 12,
            minimumRetentionDays: 7,
        });
        expect(policy.recoveryPointRetentionHours).toBe(24);
    });

    it('keeps every setting it is given', () => {
        const policy = validateReplicationPolicy(
            {
                copyFrequencySeconds: 30,
                recoveryPointRetentionHours: 72,
                appConsistentSnapshotFrequencyHours: 12,
                initialReplicationStart: '2025-02-01T22:00:00+01:00',
                offHoursWindow: { start: '20:00', end: '05:30', timeZone: 'Europe/Paris' },
                uploadBandwidth: { workHoursMbps: 50, offHoursMbps: 500 },
                description: 'tier 1',
            },
            'tier1',
        );
        expect(policy).toMatchObject({
            name: 'tier1',
            copyFrequencySeconds: 30,
            recoveryPointRetentionHours: 72,
            appConsistentSnapshotFrequencyHours: 12,
            offHoursWindow: { timeZone: 'Europe/Paris' },
            uploadBandwidth: { workHoursMbps: 50, offHoursMbps: 500 },
        });
    });

    it.each([
        [{ copyFrequencySeconds: 60 }, 'copyFrequencySeconds', /must be 30, 300 or 900; got 60/],
        [{ recoveryPointRetentionHours: 73 }, 'recoveryPointRetentionHours', /0 to 72; got 73/],
        [{ recoveryPointRetentionHours: 1.5 }, 'recoveryPointRetentionHours', /got 1.5/],
        [{ appConsistentSnapshotFrequencyHours: 13 }, 'appConsistentSnapshotFrequencyHours', /1 to 12.*got 13/],
        [
            { appConsistentSnapshotFrequencyHours: 4, recoveryPointRetentionHours: 2 },
            'appConsistentSnapshotFrequencyHours',
            /must not exceed how long points are kept \(2 h\)/,
        ],
        [{ initialReplicationStart: 'tonight' }, 'initialReplicationStart', /got "tonight"/],
        [{ initialReplicationStart: '2025-02-01T22:00:00' }, 'initialReplicationStart', /with a time zone/],
        [{ offHoursWindow: { start: '25:00', end: '06:00' } }, 'offHoursWindow.start', /HH:MM; got "25:00"/],
        [{ offHoursWindow: { start: '18:30', end: '18:30' } }, 'offHoursWindow.end', /must differ/],
        [
            { offHoursWindow: { start: '18:30', end: '06:00', timeZone: 'Mars/Olympus' } },
            'offHoursWindow.timeZone',
            /IANA.*"Mars\/Olympus"/,
        ],
        [{ uploadBandwidth: { workHoursMbps: -1 } }, 'uploadBandwidth.workHoursMbps', /above 0.*got -1/],
        [{ keepForever: 3 }, 'keepForever', /is not a replication policy setting/],
        [{ retention: 3 }, 'retention', /must be an object/],
        [
            { retention: { dailyDays: 31, weeklyWeeks: 4 } },
            'retention.weeklyWeeks',
            /must end later than retention.dailyDays/,
        ],
        [
            { retention: { hourlyHours: 72, dailyDays: 2 } },
            'retention.dailyDays',
            /must end later than retention.hourlyHours \(72 h\)/,
        ],
        [{ retention: { dailyDays: 401 } }, 'retention.dailyDays', /from 0 to 400; got 401/],
        [{ retention: { yearly: 1 } }, 'retention.yearly', /is not a retention setting/],
        [
            { recoveryPointRetentionHours: 12, retention: { allPointsHours: 24 } },
            'recoveryPointRetentionHours',
            /must equal retention.allPointsHours \(24\)/,
        ],
    ])('rejects %j naming %s and the value', (settings, field, message) => {
        const err = rejection({ name: 'p', ...settings });
        expect(err.code).toBe('VALIDATION_FAILED');
        expect(err.details).toMatchObject({ field });
        expect(err.message).toMatch(message);
        expect(err.message.startsWith(field)).toBe(true);
    });

    it('rejects a bad name and a body name that disagrees with the URL', () => {
        expect(rejection({ name: 'a/b' }).message).toMatch(/^name .*got "a\/b"/);
        expect(rejection({ name: 'other' }, 'gold').message).toMatch(/must match the name in the URL \("gold"\)/);
        expect(rejection([]).message).toMatch(/^body must be a JSON object/);
    });
});
