import { Timer } from '@azure/functions';
import { connectionFromString } from '../../../shared/storage/connections';
import { encodeKey, tableFor } from '../../../shared/state/tables';
import { LocalHostOptions, startLocalHost } from '../../../tools/platform';
import { TIMER_STATUS_TABLE } from '../../../packages/functions-local/src';
import { probe } from './fixtures/probe';

function options(extra: Partial<LocalHostOptions> = {}): LocalHostOptions {
    return {
        appRoot: __dirname,
        modules: [require.resolve('./fixtures/timerApp')],
        port: 0,
        storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
        settings: { HOST_TEST_SCHEDULE: '0 */5 * * * *' },
        blobScanIntervalMs: 0,
        queuePolling: false,
        log: () => undefined,
        ...extra,
    };
}

async function waitFor(predicate: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 500; i++) {
        if (predicate()) return;
        await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out waiting for ${what}`);
}

describe('timer triggers', () => {
    afterEach(() => probe.reset());

    it('fires a timer on demand with the Timer object the worker passes', async () => {
        const clock = { now: () => new Date('2025-03-01T10:02:00Z') };
        const host = await startLocalHost(options({ timers: false, clock }));
        try {
            await host.fireTimer('fixtureResyncSweep');
            const [call] = probe.of('fixtureResyncSweep');
            expect(call!.input).toEqual({
                isPastDue: false,
                schedule: { adjustForDST: false },
                scheduleStatus: {
                    last: new Date(0).toISOString(),
                    next: '2025-03-01T10:05:00.000Z',
                    lastUpdated: '2025-03-01T10:02:00.000Z',
                },
            } satisfies Timer);
            await expect(host.fireTimer('nope')).rejects.toThrow(/No timer function "nope"/);
            expect(host.functions.find((f) => f.name === 'fixtureResyncSweep')?.detail).toBe(
                '%HOST_TEST_SCHEDULE% (UTC), next 2025-03-01T10:05:00.000Z',
            );
        } finally {
            await host.stop();
        }
    });

    it('runs a runOnStartup timer when the host starts', async () => {
        const host = await startLocalHost(options());
        try {
            await waitFor(() => probe.of('fixtureOnStartup').length === 1, 'the start-up run');
            expect((probe.of('fixtureOnStartup')[0]!.input as Timer).isPastDue).toBe(false);
        } finally {
            await host.stop();
        }
    });

    it('fires on its schedule', async () => {
        const host = await startLocalHost(options({ settings: { HOST_TEST_SCHEDULE: '* * * * * *' } }));
        try {
            await waitFor(() => probe.of('fixtureResyncSweep').length >= 2, 'two scheduled runs');
        } finally {
            await host.stop();
        }
    });

    it('runs an occurrence missed while the host was down at start, marked past due', async () => {
        const storage = connectionFromString(process.env.AZURITE_CONNECTION_STRING!);
        const status = await tableFor(storage, TIMER_STATUS_TABLE);
        await status.upsertEntity({
            partitionKey: 'timers',
            rowKey: encodeKey('fixtureResyncSweep'),
            last: '2025-03-01T09:55:00.000Z',
            next: '2025-03-01T10:00:00.000Z',
            lastUpdated: '2025-03-01T09:55:00.000Z',
        });
        const clock = { now: () => new Date('2025-03-01T10:02:00Z') };
        const host = await startLocalHost(options({ clock }));
        try {
            await waitFor(() => probe.of('fixtureResyncSweep').length === 1, 'the past-due run');
            const timer = probe.of('fixtureResyncSweep')[0]!.input as Timer;
            expect(timer.isPastDue).toBe(true);
            expect(timer.scheduleStatus.last).toBe('2025-03-01T09:55:00.000Z');
        } finally {
            await host.stop();
        }
        const row = await status.getEntity<{ next: string }>('timers', encodeKey('fixtureResyncSweep'));
        expect(row.next).toBe('2025-03-01T10:05:00.000Z');
    });

    it('refuses to start with a schedule that does not parse, naming the value', async () => {
        await expect(startLocalHost(options({ settings: { HOST_TEST_SCHEDULE: '0 */5 * * *' } }))).rejects.toThrow(
            /expected 6 fields/,
        );
    });
});
