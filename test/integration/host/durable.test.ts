import { startLocalHost } from '../../../tools/host/localHost';

describe('orchestrations through the local host', () => {
    it('starts an orchestration from an HTTP function and serves its status URL through the host', async () => {
        const host = await startLocalHost({
            appRoot: __dirname,
            modules: [require.resolve('./fixtures/durableApp')],
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: () => undefined,
        });
        try {
            const started = await fetch(`${host.apiUrl}/greetings/ada`, { method: 'POST' });
            expect(started.status).toBe(202);
            const links = (await started.json()) as { id: string; statusQueryGetUri: string };
            expect(links.statusQueryGetUri.startsWith(`${host.url}/runtime/webhooks/durabletask/instances/`)).toBe(
                true,
            );

            let status: { runtimeStatus?: string; output?: unknown } = {};
            for (let i = 0; i < 250 && status.runtimeStatus !== 'Completed'; i++) {
                const res = await fetch(links.statusQueryGetUri);
                status = (await res.json()) as typeof status;
                if (status.runtimeStatus !== 'Completed') await new Promise((r) => setTimeout(r, 20));
            }
            expect(status).toMatchObject({ runtimeStatus: 'Completed', output: 'hello ada' });
            expect(await host.runtime!.getStatus(links.id)).toMatchObject({ runtimeStatus: 'Completed' });
            expect(host.functions.map((f) => `${f.trigger}:${f.name}`)).toEqual(
                expect.arrayContaining(['activity:fixtureGreet', 'orchestration:fixtureGreeting']),
            );
        } finally {
            await host.stop();
        }
    });
});
