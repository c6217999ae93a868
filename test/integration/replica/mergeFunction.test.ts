import { QueueClient } from '@azure/storage-queue';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPLICA_LOGS_CONTAINER } from '../../../shared/replica/logBlob';
import {
    BLOB_CREATED_EVENT,
    logEventSubject,
    parseLogEvent,
    REPLICA_LOG_EVENTS_QUEUE,
} from '../../../shared/replica/logEvents';
import { getReplicaDisk } from '../../../shared/state/disks';
import { LocalHost, startLocalHost } from '../../../tools/platform';
import { functionRegistry, RunningAzurite, startAzurite } from '../../../packages/functions-local/src';
import { ReplicaHarness, seededRandom } from './harness';

jest.setTimeout(180_000);

const ROOT = join(__dirname, '../../..');

/** Every app module, so the assertion covers every trigger the app registers. */
function loadWholeApp(): void {
    for (const folder of ['functions', 'orchestrations']) {
        for (const file of readdirSync(join(ROOT, folder))) {
            // eslint-disable-next-line @typescript-eslint/no-require-imports
            if (file.endsWith('.ts')) require(join(ROOT, folder, file));
        }
    }
}

describe('the merge trigger path', () => {
    beforeAll(() => loadWholeApp());

    it('is a Storage queue trigger on replica-log-events through REPLICA_STORAGE, with a durable client', () => {
        const fn = functionRegistry().get('mergeReplicaLog');
        expect(fn.trigger).toMatchObject({
            type: 'queueTrigger',
            queueName: REPLICA_LOG_EVENTS_QUEUE,
            connection: 'REPLICA_STORAGE',
        });
        expect(Object.values(fn.metadata.bindings).some((b) => b.type === 'durableClient')).toBe(true);
        expect(functionRegistry().get('mergeGapSweep').trigger).toMatchObject({ type: 'timerTrigger' });
    });

    it('is documented with the queue settings host.json really has', () => {
        const hostJson = JSON.parse(readFileSync(join(ROOT, 'host.json'), 'utf8')) as {
            extensions: { queues: Record<string, string | number> };
        };
        const doc = readFileSync(join(ROOT, 'docs/merge.md'), 'utf8');
        for (const [key, value] of Object.entries(hostJson.extensions.queues)) {
            expect(doc).toContain(`\`${key}\` ${value}`);
        }
    });

    it('has no trigger or input binding that binds blob content, in any function of the app', () => {
        const all = [...functionRegistry().functions.values()];
        expect(all.length).toBeGreaterThan(10);
        const blobBindings = all.flatMap((f) =>
            Object.entries(f.metadata.bindings)
                .filter(([, b]) => /^blob/i.test(b.type) && b.direction !== 'out')
                .map(([name, b]) => `${f.name}.${name} (${b.type})`),
        );
        expect(blobBindings).toEqual([]);
    });
});

describe('the merge through the local host, as Azure delivers it', () => {
    let host: LocalHost | undefined;
    let azurite: RunningAzurite;
    const lines: string[] = [];
    // Its own Azurite: the replica-logs container and the event queue are fixed names.
    beforeAll(async () => {
        azurite = await startAzurite();
    });
    afterAll(async () => {
        await azurite.stop();
    });
    afterEach(async () => {
        await host?.stop();
        host = undefined;
        lines.length = 0;
    });

    async function start(h: ReplicaHarness): Promise<LocalHost> {
        return startLocalHost({
            appRoot: ROOT,
            modules: [require.resolve('../../../functions/mergeReplicaLog')],
            port: 0,
            storageConnectionString: azurite.connectionString,
            settings: { STATE_TABLE_PREFIX: h.scope.tablePrefix, MERGE_READ_BYTES: String(1024 * 1024) },
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: (line) => lines.push(line),
        });
    }

    it('enqueues the Event Grid BlobCreated message for an upload and merges it from the queue', async () => {
        const h = new ReplicaHarness(azurite.connectionString);
        const disk = await h.addDisk('disk0', 4 * 1024 * 1024);
        disk.randomWrites(seededRandom(3), 8);
        const name = await h.upload('disk0', disk.cutLog(), { cycleId: 'c1' });
        host = await start(h);
        const queue = new QueueClient(azurite.connectionString, REPLICA_LOG_EVENTS_QUEUE);
        await queue.createIfNotExists();

        const scan = await host.scanNow();
        expect(scan.published).toBeGreaterThanOrEqual(1);
        // The message is what Event Grid writes to a Storage queue: base64 of one Event Grid schema event.
        const peeked = await queue.peekMessages({ numberOfMessages: 32 });
        const events = peeked.peekedMessageItems.map(
            (m) => JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as Record<string, unknown>,
        );
        const ours = events.find((e) => e.subject === logEventSubject(name));
        expect(ours).toMatchObject({
            eventType: BLOB_CREATED_EVENT,
            subject: `/blobServices/default/containers/${REPLICA_LOGS_CONTAINER}/blobs/${name}`,
            data: { blobType: 'BlockBlob', url: expect.stringContaining(`/${REPLICA_LOGS_CONTAINER}/`) },
        });
        expect(parseLogEvent(ours)).toMatchObject({ kind: 'merge', blobName: name });
        // A second scan publishes nothing new for the same blob version.
        expect((await host.scanNow()).published).toBe(0);

        const drained = await host.drainStorageQueues();
        expect(drained.poisoned).toBe(0);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.sequence).toBe(1);
        expect(lines.some((l) => l.includes(`${name} → applied as log 1`))).toBe(true);
    });

    it('logs a log already merged by an earlier invocation as expected, not as a failure', async () => {
        const h = new ReplicaHarness(azurite.connectionString);
        const disk = await h.addDisk('disk0', 4 * 1024 * 1024);
        disk.randomWrites(seededRandom(5), 8);
        const first = disk.cutLog();
        disk.randomWrites(seededRandom(6), 8);
        const second = disk.cutLog();
        // Log 2 arrives first and waits; log 1's merge then applies log 2 as well and removes it.
        const secondName = await h.upload('disk0', second);
        host = await start(h);
        const queue = new QueueClient(azurite.connectionString, REPLICA_LOG_EVENTS_QUEUE);
        await queue.createIfNotExists();
        await host.scanNow();
        await h.upload('disk0', first);
        await host.drainStorageQueues();
        await host.scanNow();
        await host.drainStorageQueues();
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.sequence).toBe(2);
        lines.length = 0;
        // Log 2's own event, delivered again (Event Grid delivers at least once), finds it gone.
        await queue.sendMessage(
            Buffer.from(
                JSON.stringify({
                    id: 'redelivered',
                    subject: logEventSubject(secondName),
                    eventType: BLOB_CREATED_EVENT,
                    eventTime: new Date().toISOString(),
                    data: {},
                    dataVersion: '',
                }),
            ).toString('base64'),
        );
        const drained = await host.drainStorageQueues();
        expect(drained).toMatchObject({ failed: 0, poisoned: 0 });
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.sequence).toBe(2);
        expect(lines.filter((l) => /failed/i.test(l))).toEqual([]);
        expect(lines.some((l) => l.includes(`${secondName} → already merged and removed`))).toBe(true);
    });
});
