import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceBusHostSettings, timeSpanMs } from '../../../packages/functions-local/src';

function appWith(serviceBus: unknown): string {
    const dir = mkdtempSync(join(tmpdir(), 'hvr-hostjson-'));
    writeFileSync(join(dir, 'host.json'), JSON.stringify({ version: '2.0', extensions: { serviceBus } }));
    return dir;
}

describe("host.json's Service Bus settings, as extension 5.x reads them", () => {
    it('reads the flat 5.x names', () => {
        const settings = serviceBusHostSettings(
            appWith({
                autoCompleteMessages: false,
                maxConcurrentCalls: 4,
                maxConcurrentSessions: 2,
                prefetchCount: 10,
                maxAutoLockRenewalDuration: '00:02:30',
            }),
        );
        expect(settings).toEqual({
            autoCompleteMessages: false,
            maxConcurrentCalls: 4,
            maxConcurrentSessions: 2,
            prefetchCount: 10,
            maxAutoLockRenewalDurationMs: 150_000,
            ignored: [],
        });
    });

    it('ignores the 4.x handler options as 5.x does, so an ignored autoComplete: false still auto-completes', () => {
        const settings = serviceBusHostSettings(
            appWith({
                prefetchCount: 0,
                messageHandlerOptions: { autoComplete: false, maxConcurrentCalls: 16 },
                sessionHandlerOptions: { autoComplete: false, maxConcurrentSessions: 8 },
            }),
        );
        expect(settings.autoCompleteMessages).toBe(true);
        expect(settings.maxConcurrentSessions).toBe(8);
        expect(settings.ignored).toEqual(['messageHandlerOptions', 'sessionHandlerOptions']);
    });

    it('uses the defaults without a host.json or a serviceBus section', () => {
        const settings = serviceBusHostSettings(mkdtempSync(join(tmpdir(), 'hvr-nohostjson-')));
        expect(settings).toMatchObject({
            autoCompleteMessages: true,
            maxConcurrentSessions: 8,
            prefetchCount: 0,
            maxAutoLockRenewalDurationMs: 300_000,
        });
    });

    it('refuses a value of the wrong kind, naming the setting', () => {
        expect(() => serviceBusHostSettings(appWith({ autoCompleteMessages: 'no' }))).toThrow(
            /extensions\.serviceBus\.autoCompleteMessages must be true or false/,
        );
        expect(() => serviceBusHostSettings(appWith({ maxConcurrentSessions: 0 }))).toThrow(/maxConcurrentSessions/);
        expect(() => serviceBusHostSettings(appWith({ maxAutoLockRenewalDuration: '5m' }))).toThrow(
            /maxAutoLockRenewalDuration must be a time span/,
        );
    });

    it('reads .NET time spans', () => {
        expect(timeSpanMs('00:05:00')).toBe(300_000);
        expect(timeSpanMs('1.00:00:01.5')).toBe(86_401_500);
        expect(timeSpanMs('5 minutes')).toBeUndefined();
    });
});
