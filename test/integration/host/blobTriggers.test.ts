import { TableClient } from '@azure/data-tables';
import { ContainerClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { connectionFromString } from '../../../shared/storage/connections';
import { BLOB_POISON_QUEUE, parseBlobPath } from '../../../packages/functions-local/src';
import { LocalHost, LocalHostOptions, startLocalHost } from '../../../tools/platform';
import { uniqueName } from '../../support/azurite';
import { probe } from './fixtures/probe';

const storage = (): string => process.env.AZURITE_CONNECTION_STRING!;
const logsContainer = uniqueName('hostlogs');
const reportsContainer = uniqueName('hostreports');

function options(extra: Partial<LocalHostOptions> = {}): LocalHostOptions {
    return {
        appRoot: __dirname,
        modules: [require.resolve('./fixtures/blobApp')],
        port: 0,
        storageConnectionString: storage(),
        settings: { HOST_TEST_LOGS: logsContainer, HOST_TEST_REPORTS: reportsContainer },
        blobScanIntervalMs: 0,
        timers: false,
        queuePolling: false,
        log: () => undefined,
        ...extra,
    };
}

function container(name: string): ContainerClient {
    return connectionFromString(storage()).blob.getContainerClient(name);
}

async function poisonMessages(): Promise<Record<string, unknown>[]> {
    const queue = QueueServiceClient.fromConnectionString(storage()).getQueueClient(BLOB_POISON_QUEUE);
    if (!(await queue.exists())) return [];
    const peeked = await queue.peekMessages({ numberOfMessages: 32 });
    return peeked.peekedMessageItems.map(
        (m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as Record<string, unknown>,
    );
}

describe('blob triggers from a container scan with receipts', () => {
    let host: LocalHost | undefined;

    beforeAll(async () => {
        await container(logsContainer).create();
        await container(reportsContainer).create();
    });
    afterEach(async () => {
        await host?.stop();
        host = undefined;
        probe.reset();
    });

    it('fires once for a created blob, with its content and metadata, and not again on later scans', async () => {
        host = await startLocalHost(options());
        const blob = container(logsContainer).getBlockBlobClient('site-a/vm-1/disk-0/1-abc.hrl');
        await blob.upload('log bytes', 9, { metadata: { cycle: 'c1' } });

        const first = await host.scanNow();
        expect(first).toMatchObject({ fired: 1, succeeded: 1 });
        const [call] = probe.of('fixtureLogUploaded');
        expect(Buffer.isBuffer(call!.input)).toBe(true);
        expect((call!.input as Buffer).toString()).toBe('log bytes');
        expect(call!.metadata).toMatchObject({
            name: 'site-a/vm-1/disk-0/1-abc.hrl',
            blobTrigger: `${logsContainer}/site-a/vm-1/disk-0/1-abc.hrl`,
            uri: blob.url,
            metadata: { cycle: 'c1' },
            properties: { blobType: 'BlockBlob', contentLength: 9 },
        });

        expect(await host.scanNow()).toMatchObject({ fired: 0 });
        expect(probe.of('fixtureLogUploaded')).toHaveLength(1);
    });

    it('does not fire again across a restart that keeps the receipts', async () => {
        host = await startLocalHost(options());
        await container(logsContainer).getBlockBlobClient('restart/1.hrl').upload('x', 1);
        await host.scanNow();
        expect(probe.of('fixtureLogUploaded').filter((c) => c.metadata?.name === 'restart/1.hrl')).toHaveLength(1);
        await host.stop();

        host = await startLocalHost(options());
        await container(logsContainer).getBlockBlobClient('restart/2.hrl').upload('y', 1);
        await host.scanNow();
        const names = probe.of('fixtureLogUploaded').map((c) => c.metadata?.name);
        expect(names.filter((n) => n === 'restart/1.hrl')).toHaveLength(1);
        expect(names.filter((n) => n === 'restart/2.hrl')).toHaveLength(1);
    });

    it('follows Event Grid semantics: a metadata change does not fire, a re-upload does', async () => {
        host = await startLocalHost(options());
        const blob = container(logsContainer).getBlockBlobClient('eventgrid/1.hrl');
        await blob.upload('first', 5);
        await host.scanNow();
        await blob.setMetadata({ applied: 'true' });
        await host.scanNow();
        expect(probe.of('fixtureLogUploaded').filter((c) => c.metadata?.name === 'eventgrid/1.hrl')).toHaveLength(1);

        await blob.upload('second version', 14);
        await host.scanNow();
        const calls = probe.of('fixtureLogUploaded').filter((c) => c.metadata?.name === 'eventgrid/1.hrl');
        expect(calls).toHaveLength(2);
        expect((calls[1]!.input as Buffer).toString()).toBe('second version');
    });

    it('follows polling semantics without Event Grid: every change fires, as a string, with path values', async () => {
        host = await startLocalHost(options());
        const blob = container(reportsContainer).getBlockBlobClient('site-b/health.json');
        await blob.upload('{"ok":true}', 11);
        await container(reportsContainer).getBlockBlobClient('site-b/readme.txt').upload('not json', 8);
        await host.scanNow();
        await blob.setMetadata({ seen: '1' });
        await host.scanNow();
        const calls = probe.of('fixtureReportPolled');
        expect(calls).toHaveLength(2);
        expect(calls[0]!.input).toBe('{"ok":true}');
        expect(calls[0]!.metadata).toMatchObject({ site: 'site-b', name: 'health' });
    });

    it('passes no content for a blob over the content limit, only what is needed to read it', async () => {
        host = await startLocalHost(options({ blobTrigger: { contentLimitBytes: 4 } }));
        await container(logsContainer).getBlockBlobClient('large/1.hrl').upload('more than four', 14);
        await host.scanNow();
        const [call] = probe.of('fixtureLogUploaded').filter((c) => c.metadata?.name === 'large/1.hrl');
        expect(call!.input).toBeUndefined();
        expect(call!.metadata).toMatchObject({ properties: { contentLength: 14 } });
    });

    it('retries a failing blob on later scans and reports it as poison after 5 tries, with the reason', async () => {
        const lines: string[] = [];
        host = await startLocalHost(options({ log: (l) => lines.push(l) }));
        const name = `fail-${uniqueName('b')}.hrl`;
        await container(logsContainer).getBlockBlobClient(name).upload('bad', 3);

        const reports = [];
        for (let i = 0; i < 6; i++) reports.push(await host.scanNow());
        expect(reports.map((r) => (r.failed > 0 ? 'failed' : r.poisoned > 0 ? 'poison' : r.fired))).toEqual([
            'failed',
            'failed',
            'failed',
            'failed',
            'poison',
            0,
        ]);
        expect(probe.of('fixtureLogUploaded').filter((c) => c.metadata?.name === name)).toHaveLength(5);
        const poison = (await poisonMessages()).find((m) => m.BlobName === name);
        expect(poison).toMatchObject({
            FunctionId: 'fixtureLogUploaded',
            ContainerName: logsContainer,
            Attempts: 5,
            Reason: `Error: cannot merge ${name}`,
        });
        expect(lines.some((l) => l.includes(`(try 5 of 5)`))).toBe(true);
    });

    it('keeps counting tries across a restart', async () => {
        host = await startLocalHost(options({ blobTrigger: { maxTries: 2 } }));
        const name = `fail-${uniqueName('r')}.hrl`;
        await container(logsContainer).getBlockBlobClient(name).upload('bad', 3);
        expect(await host.scanNow()).toMatchObject({ failed: 1 });
        await host.stop();
        host = await startLocalHost(options({ blobTrigger: { maxTries: 2 } }));
        expect(await host.scanNow()).toMatchObject({ poisoned: 1 });
        expect(await host.scanNow()).toMatchObject({ fired: 0 });
    });

    it('fires each blob once when two hosts scan the same storage at the same time', async () => {
        host = await startLocalHost(options());
        const second = await startLocalHost(options());
        try {
            const names = Array.from({ length: 6 }, (_, i) => `shared/${uniqueName('s')}-${i}.hrl`);
            for (const name of names) await container(logsContainer).getBlockBlobClient(name).upload('z', 1);
            const [a, b] = await Promise.all([host.scanNow(), second.scanNow()]);
            expect(a.fired + b.fired).toBe(6);
            const fired = probe.of('fixtureLogUploaded').map((c) => c.metadata?.name);
            for (const name of names) expect(fired.filter((n) => n === name)).toHaveLength(1);
        } finally {
            await second.stop();
        }
    });

    it('treats a container that does not exist yet as empty', async () => {
        host = await startLocalHost(
            options({ settings: { HOST_TEST_LOGS: uniqueName('absent'), HOST_TEST_REPORTS: reportsContainer } }),
        );
        expect(await host.scanNow()).toMatchObject({ fired: 0 });
    });
});

describe('Event Grid subscriptions emulated by the scan', () => {
    let host: LocalHost | undefined;
    afterEach(async () => {
        await host?.stop();
        host = undefined;
    });

    it('forgets the receipt of a blob once it is gone, so a scan reads only what the container holds', async () => {
        const watched = uniqueName('hostevents');
        const subscription = uniqueName('sub');
        await container(watched).create();
        const queue = QueueServiceClient.fromConnectionString(storage()).getQueueClient(uniqueName('hostevq'));
        await queue.create();
        const receipts = TableClient.fromConnectionString(storage(), 'hostBlobReceipts', {
            allowInsecureConnection: true,
        });
        const receiptsOfWatched = async (): Promise<string[]> => {
            const out: string[] = [];
            for await (const r of receipts.listEntities<{ blobPath: string }>()) {
                if (r.blobPath.startsWith(`${watched}/`)) out.push(r.blobPath);
            }
            return out;
        };
        host = await startLocalHost(
            options({
                plugins: [
                    {
                        eventSubscriptions: () => [
                            {
                                name: subscription,
                                connection: 'AzureWebJobsStorage',
                                container: watched,
                                queue: async () => queue,
                                message: (blobName) => Buffer.from(blobName).toString('base64'),
                            },
                        ],
                    },
                ],
            }),
        );
        const blob = container(watched).getBlockBlobClient('a/1.hrl');
        await blob.upload('x', 1);
        await container(watched).getBlockBlobClient('a/2.hrl').upload('y', 1);
        expect(await host.scanNow()).toMatchObject({ published: 2 });
        expect((await receiptsOfWatched()).sort()).toEqual([`${watched}/a/1.hrl`, `${watched}/a/2.hrl`]);

        await blob.delete();
        expect(await host.scanNow()).toMatchObject({ published: 0 });
        expect(await receiptsOfWatched()).toEqual([`${watched}/a/2.hrl`]);

        // Created again under the same name: a new blob, published again.
        await blob.upload('z', 1);
        expect(await host.scanNow()).toMatchObject({ published: 1 });
        expect(await host.scanNow()).toMatchObject({ published: 0 });
        const messages = await queue.peekMessages({ numberOfMessages: 32 });
        expect(messages.peekedMessageItems.map((m) => Buffer.from(m.messageText, 'base64').toString()).sort()).toEqual([
            'a/1.hrl',
            'a/1.hrl',
            'a/2.hrl',
        ]);
    });
});

describe('blob trigger paths', () => {
    it('matches names across virtual folders and extracts every parameter', () => {
        const p = parseBlobPath('replica-logs/{site}/{name}.hrl');
        expect(p.container).toBe('replica-logs');
        expect(p.prefix).toBe('');
        expect(p.match('s1/vm/disk/1-a.hrl')).toEqual({ site: 's1', name: 'vm/disk/1-a' });
        expect(p.match('s1.txt')).toBeUndefined();
        expect(parseBlobPath('logs/in/{name}').prefix).toBe('in/');
    });

    it('rejects an invalid container or a malformed parameter', () => {
        expect(() => parseBlobPath('Bad_Container/{name}')).toThrow(/valid container name/);
        expect(() => parseBlobPath('logs/{na-me}')).toThrow(/malformed parameter/);
    });
});
