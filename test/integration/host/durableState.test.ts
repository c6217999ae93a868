import { uniqueTaskHub } from '../../support/durableEngines';
import { startLocalHost, type LocalHost } from '../../../tools/platform';

/** Two hosts on one storage and task hub, with durable state in storage: only one owns it at a time. */
describe('the local host with durable state in storage', () => {
    const taskHub = uniqueTaskHub();
    const start = (extra: Parameters<typeof startLocalHost>[0], log: (line: string) => void = () => undefined) =>
        startLocalHost({
            appRoot: __dirname,
            modules: [require.resolve('./fixtures/durableApp')],
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            settings: { DURABLE_TASK_HUB: taskHub },
            durableState: 'storage',
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log,
            ...extra,
        });
    const hosts: LocalHost[] = [];
    afterAll(async () => {
        for (const h of hosts) await h.stop();
    });

    it('keeps a finished orchestration for the next host; a second host exits or waits while the first owns the hub', async () => {
        const first = await start({});
        hosts.push(first);
        const id = await first.runtime!.startNew('fixtureGreeting', { input: 'ada' });
        await first.runtime!.waitForStatus(id, (s) => s.runtimeStatus === 'Completed', { timeoutMs: 60_000 });

        await expect(start({ ifTaskHubOwned: 'exit' })).rejects.toThrow(
            /durable state \(\S+-embedded\/owner\) is owned by \S+ pid \d+ \(port 0\) since \d{4}-\d\d-\d\dT/,
        );

        const lines: string[] = [];
        const waiting = start({ ifTaskHubOwned: 'wait' }, (l) => lines.push(l));
        for (let i = 0; i < 300 && !lines.some((l) => /is owned by .*Waiting for it/.test(l)); i++) {
            await new Promise((r) => setTimeout(r, 100));
        }
        expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/is owned by .*Waiting for it/)]));
        await first.stop();
        hosts.splice(0);
        const second = await waiting;
        hosts.push(second);
        expect(await second.runtime!.getStatus(id)).toMatchObject({ runtimeStatus: 'Completed', output: 'hello ada' });
    });
});
