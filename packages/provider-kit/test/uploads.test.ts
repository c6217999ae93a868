import { consistencyOfMetadata, LOG_METADATA_KEYS } from '../../../shared/contracts/uploadMetadata';
import { logMetadata } from '../src';

describe('logMetadata', () => {
    const capturedAt = new Date('2026-03-01T10:00:00.000Z');

    it('writes the names and spellings the merge reads', () => {
        const m = logMetadata({ cycleId: 'cycle-3', consistency: 'AppConsistent', capturedAt });
        expect(m).toEqual({
            [LOG_METADATA_KEYS.cycleId]: 'cycle-3',
            [LOG_METADATA_KEYS.consistency]: 'AppConsistent',
            [LOG_METADATA_KEYS.capturedAt]: '2026-03-01T10:00:00.000Z',
            [LOG_METADATA_KEYS.resync]: 'false',
        });
        // What the merge makes of it: the consistency it means, no deprecated spelling.
        expect(consistencyOfMetadata(m[LOG_METADATA_KEYS.consistency])).toBe('AppConsistent');
        for (const name of Object.keys(m)) expect(name).toBe(name.toLowerCase());
    });

    it('leaves cycleid out for a log inside a cycle and defaults to CrashConsistent', () => {
        const m = logMetadata({ capturedAt, resync: true });
        expect(m).not.toHaveProperty(LOG_METADATA_KEYS.cycleId);
        expect(m[LOG_METADATA_KEYS.consistency]).toBe('CrashConsistent');
        expect(m[LOG_METADATA_KEYS.resync]).toBe('true');
    });

    it('refuses what the merge would quarantine, before anything is uploaded', () => {
        expect(() => logMetadata({ capturedAt, consistency: 'crash' as never })).toThrow(/consistency must be one of/);
        expect(() => logMetadata({ capturedAt, cycleId: 'bad id.' })).toThrow(/cycleId must be/);
        expect(() => logMetadata({ capturedAt: new Date(NaN) })).toThrow(/capturedAt/);
        expect(() => logMetadata({ capturedAt, cycleId: 'initial', resync: true })).toThrow(/resync log/);
    });
});
