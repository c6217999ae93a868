import { TableClient, TableServiceClient } from '@azure/data-tables';
import { QueueServiceClient } from '@azure/storage-queue';
import { enginesUnderTest, uniqueTaskHub } from '../../support/durableEngines';
import { startLocalHost } from '../../../tools/platform';

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

describe('orchestrations through the local host on the real engine (--durable dtfx)', () => {
    const dtfx = enginesUnderTest().find((e) => e.name === 'dtfx');
    const run = dtfx && !dtfx.skip ? it : it.skip;
    if (dtfx?.skip) console.log(`local host on dtfx: skipped: ${dtfx.skip}`);

    run('runs the orchestration in the extension: its task hub is in Azurite, no embedded runtime exists', async () => {
        const storage = process.env.AZURITE_CONNECTION_STRING!;
        const taskHub = uniqueTaskHub('host');
        const host = await startLocalHost({
            appRoot: __dirname,
            modules: [require.resolve('./fixtures/durableApp')],
            port: 0,
            storageConnectionString: storage,
            settings: { DURABLE_TASK_HUB: taskHub },
            durable: 'dtfx',
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: () => undefined,
        });
        try {
            expect(host.durable).toBe('dtfx');
            expect(host.runtime).toBeUndefined();
            const started = await fetch(`${host.apiUrl}/greetings/ada`, { method: 'POST' });
            expect(started.status).toBe(202);
            const links = (await started.json()) as { id: string; statusQueryGetUri: string };
            expect(links.statusQueryGetUri.startsWith(`${host.url}/runtime/webhooks/durabletask/instances/`)).toBe(
                true,
            );
            let status: { runtimeStatus?: string; output?: unknown } = {};
            for (let i = 0; i < 300 && status.runtimeStatus !== 'Completed'; i++) {
                const res = await fetch(links.statusQueryGetUri);
                status = (await res.json()) as typeof status;
                if (status.runtimeStatus !== 'Completed') await new Promise((r) => setTimeout(r, 100));
            }
            expect(status).toMatchObject({ runtimeStatus: 'Completed', output: 'hello ada' });

            // The extension's own storage: the Instances, History and Partitions (table partition manager) tables and the control and work-item queues.
            const tables: string[] = [];
            for await (const t of TableServiceClient.fromConnectionString(storage, {
                allowInsecureConnection: true,
            }).listTables()) {
                if (t.name?.startsWith(taskHub)) tables.push(t.name);
            }
            expect(tables.sort()).toEqual([`${taskHub}History`, `${taskHub}Instances`, `${taskHub}Partitions`]);
            const queues: string[] = [];
            for await (const q of QueueServiceClient.fromConnectionString(storage).listQueues({
                prefix: taskHub.toLowerCase(),
            })) {
                queues.push(q.name);
            }
            expect(queues).toEqual(
                expect.arrayContaining([`${taskHub.toLowerCase()}-control-00`, `${taskHub.toLowerCase()}-workitems`]),
            );
            const instance = await TableClient.fromConnectionString(storage, `${taskHub}Instances`, {
                allowInsecureConnection: true,
            }).getEntity<{ RuntimeStatus: string }>(links.id, '');
            expect(instance.RuntimeStatus).toBe('Completed');
        } finally {
            await host.stop();
        }
    });

    it('fails at once, naming what is missing, when dotnet cannot be run', async () => {
        const saved = process.env.HVR_DOTNET;
        process.env.HVR_DOTNET = '/nonexistent/dotnet';
        try {
            await expect(
                startLocalHost({
                    appRoot: __dirname,
                    modules: [require.resolve('./fixtures/durableApp')],
                    port: 0,
                    storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
                    durable: 'dtfx',
                    blobScanIntervalMs: 0,
                    timers: false,
                    queuePolling: false,
                    log: () => undefined,
                }),
            ).rejects.toThrow(/--durable dtfx needs dotnet \(\/nonexistent\/dotnet\) cannot be run/);
        } finally {
            if (saved === undefined) delete process.env.HVR_DOTNET;
            else process.env.HVR_DOTNET = saved;
        }
    });
});
