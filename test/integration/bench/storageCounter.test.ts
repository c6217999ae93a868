import { RestError } from '@azure/core-rest-pipeline';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { TableClient } from '@azure/data-tables';
import { startStorageCounter, type StorageCounter, type StorageCounts } from '../../../bench/support/storageCounter';
import type { StorageOpKind } from '../../../bench/support/storageOps';
import { connectionFromString } from '../../../shared/storage/connections';
import { uniqueName } from '../../support/azurite';

function target(): { blobUrl: string; queueUrl: string; tableUrl: string } {
    const blobUrl = process.env.AZURITE_BLOB_URL;
    const queueUrl = process.env.AZURITE_QUEUE_URL;
    const tableUrl = process.env.AZURITE_TABLE_URL;
    if (!blobUrl || !queueUrl || !tableUrl) throw new Error('run through jest: its global setup starts Azurite');
    return { blobUrl, queueUrl, tableUrl };
}

/** requests per kind, only the kinds seen. */
function requestsByKind(c: StorageCounts): Partial<Record<StorageOpKind, number>> {
    return Object.fromEntries(Object.entries(c.byKind).map(([k, v]) => [k, v.requests]));
}

describe('storage counter', () => {
    let counter: StorageCounter;

    beforeAll(async () => {
        counter = await startStorageCounter(target(), { callers: ['app', 'durable'] });
    });

    afterAll(async () => {
        await counter.close();
    });

    beforeEach(() => counter.reset());

    it('forwards blob calls unchanged and counts each by kind, with its body bytes', async () => {
        const blob = BlobServiceClient.fromConnectionString(counter.connectionString('app'));
        const container = blob.getContainerClient(uniqueName('cnt'));
        await container.create();
        const page = container.getPageBlobClient('disk.vhd');
        await page.create(64 * 1024);
        const data = Buffer.alloc(8192, 7);
        await page.uploadPages(data, 0, 8192);
        await page.uploadPages(data.subarray(0, 4096), 16384, 4096);
        await page.clearPages(0, 512);
        const ranges = await page.getPageRanges();
        expect(ranges.pageRange?.length).toBeGreaterThan(0);
        const ranged = await page.download(16384, 1024);
        const body = await streamBytes(ranged.readableStreamBody!);
        expect(body.equals(data.subarray(0, 1024))).toBe(true);
        const whole = await streamBytes((await page.download()).readableStreamBody!);
        expect(whole.length).toBe(64 * 1024);
        await page.createSnapshot();
        await page.getProperties();
        await page.setMetadata({ k: 'v' });
        const lease = page.getBlobLeaseClient();
        await lease.acquireLease(15);
        await lease.releaseLease();
        const block = container.getBlockBlobClient('log.hrl');
        await block.upload(Buffer.from('hello'), 5);
        await block.stageBlock(Buffer.from('AAAA').toString('base64'), Buffer.from('abc'), 3);
        await block.commitBlockList([Buffer.from('AAAA').toString('base64')]);
        const names: string[] = [];
        for await (const b of container.listBlobsFlat()) names.push(b.name);
        expect(names.sort()).toEqual(['disk.vhd', 'log.hrl']);
        await container.delete();

        const c = counter.counts('app');
        expect(requestsByKind(c)).toEqual({
            'blob.createContainer': 1,
            'blob.putBlob': 2,
            'blob.putPage': 2,
            'blob.clearPages': 1,
            'blob.getPageRanges': 1,
            'blob.getBlobRange': 1,
            'blob.getBlob': 1,
            'blob.snapshot': 1,
            'blob.getProperties': 1,
            'blob.setMetadata': 1,
            'blob.lease': 2,
            'blob.putBlock': 1,
            'blob.putBlockList': 1,
            'blob.listBlobs': 1,
            'blob.deleteContainer': 1,
        });
        expect(c.requests).toBe(18);
        expect(c.byKind['blob.putPage']!.bytesIn).toBe(8192 + 4096);
        expect(c.byKind['blob.getBlobRange']!.bytesOut).toBe(1024);
        expect(c.byKind['blob.getBlob']!.bytesOut).toBe(64 * 1024);
        expect(c.byService.blob.requests).toBe(18);
        expect(c.failed).toBe(0);
        expect(c.byAgent['azsdk-js-azure-storage-blob']).toBe(18);
        expect(counter.counts('durable').requests).toBe(0);
    });

    it('counts queue messages put, got, peeked, updated and deleted', async () => {
        const queues = QueueServiceClient.fromConnectionString(counter.connectionString('durable'));
        const queue = queues.getQueueClient(uniqueName('q'));
        await queue.create();
        for (let i = 0; i < 3; i++) await queue.sendMessage(`m${i}`);
        const peeked = await queue.peekMessages({ numberOfMessages: 2 });
        expect(peeked.peekedMessageItems.length).toBe(2);
        const got = await queue.receiveMessages({ numberOfMessages: 2, visibilityTimeout: 30 });
        expect(got.receivedMessageItems.length).toBe(2);
        const [first, second] = got.receivedMessageItems;
        const updated = await queue.updateMessage(first!.messageId, first!.popReceipt, 'again', 1);
        await queue.deleteMessage(first!.messageId, updated.popReceipt!);
        await queue.deleteMessage(second!.messageId, second!.popReceipt);
        const empty = await queue.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 30 });
        expect(empty.receivedMessageItems.length).toBe(1);
        await queue.getProperties();
        await queue.delete();

        const c = counter.counts('durable');
        expect(requestsByKind(c)).toEqual({
            'queue.createQueue': 1,
            'queue.putMessage': 3,
            'queue.peekMessages': 1,
            'queue.getMessages': 2,
            'queue.updateMessage': 1,
            'queue.deleteMessage': 2,
            'queue.queueMetadata': 1,
            'queue.deleteQueue': 1,
        });
        expect(counter.counts('app').requests).toBe(0);
        expect(counter.counts().requests).toBe(12);
    });

    it('counts table reads and writes, and a batch as one request of several operations', async () => {
        const conn = connectionFromString(counter.connectionString('app'));
        const table: TableClient = conn.tableClient(uniqueName('t'));
        await table.createTable();
        await table.createEntity({ partitionKey: 'p', rowKey: 'a', n: 1 });
        await table.getEntity('p', 'a');
        await table.updateEntity({ partitionKey: 'p', rowKey: 'a', n: 2 }, 'Merge');
        await table.upsertEntity({ partitionKey: 'p', rowKey: 'b', n: 3 }, 'Replace');
        await table.submitTransaction([
            ['create', { partitionKey: 'p', rowKey: 'c' }],
            ['update', { partitionKey: 'p', rowKey: 'a', n: 4 }, 'Merge'],
            ['delete', { partitionKey: 'p', rowKey: 'b' }],
        ]);
        const rows: string[] = [];
        for await (const e of table.listEntities({ queryOptions: { filter: "PartitionKey eq 'p'" } })) {
            rows.push(e.rowKey!);
        }
        expect(rows.sort()).toEqual(['a', 'c']);
        await table.deleteEntity('p', 'a');
        await table.deleteTable();

        const c = counter.counts('app');
        expect(requestsByKind(c)).toEqual({
            'table.createTable': 1,
            'table.insert': 1,
            'table.pointRead': 1,
            'table.merge': 1,
            'table.update': 1,
            'table.batch': 1,
            'table.query': 1,
            'table.delete': 1,
            'table.deleteTable': 1,
        });
        expect(c.byKind['table.batch']).toMatchObject({ requests: 1, operations: 3 });
        expect(c.requests).toBe(9);
        expect(c.operations).toBe(11);
    });

    it('passes storage failures through unchanged and counts them as failed', async () => {
        const blob = BlobServiceClient.fromConnectionString(counter.connectionString('app'));
        const missing = blob.getContainerClient(uniqueName('none')).getBlobClient('x');
        const err: unknown = await missing.getProperties().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RestError);
        expect((err as RestError).statusCode).toBe(404);
        const c = counter.counts('app');
        expect(c.byKind['blob.getProperties']).toMatchObject({ requests: 1, failed: 1 });
    });

    it('streams a large body both ways without changing it', async () => {
        const blob = BlobServiceClient.fromConnectionString(counter.connectionString('app'));
        const container = blob.getContainerClient(uniqueName('big'));
        await container.create();
        const page = container.getPageBlobClient('d');
        const size = 8 * 1024 * 1024;
        await page.create(size);
        const data = Buffer.alloc(4 * 1024 * 1024);
        for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
        await page.uploadPages(data, 4 * 1024 * 1024, data.length);
        const back = await page.downloadToBuffer(4 * 1024 * 1024, data.length);
        expect(back.equals(data)).toBe(true);
        await container.delete();
        expect(counter.counts('app').byKind['blob.putPage']!.bytesIn).toBe(data.length);
    });

    it('keeps set-aside requests out of the totals, forwarded and counted by name', async () => {
        const aside = await startStorageCounter(target(), {
            setAside: (r) => (r.kind === 'blob.listBlobs' ? 'listing' : undefined),
        });
        try {
            const blob = BlobServiceClient.fromConnectionString(aside.connectionString());
            const container = blob.getContainerClient(uniqueName('aside'));
            await container.create();
            await container.getBlockBlobClient('a').upload(Buffer.from('x'), 1);
            const names: string[] = [];
            for await (const b of container.listBlobsFlat()) names.push(b.name);
            expect(names).toEqual(['a']);
            await container.delete();
            const c = aside.counts();
            expect(c.byKind['blob.listBlobs']).toBeUndefined();
            expect(c.setAside.listing).toMatchObject({ requests: 1, failed: 0 });
            expect(c.requests).toBe(3);
        } finally {
            await aside.close();
        }
    });

    it('rejects an unknown caller with a message naming the callers it has', () => {
        expect(() => counter.counts('nobody')).toThrow(/no caller "nobody" \(have app, durable\)/);
    });
});

async function streamBytes(stream: NodeJS.ReadableStream): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
    return Buffer.concat(chunks);
}
