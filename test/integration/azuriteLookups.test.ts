import { connectionFromString } from '../../shared/storage/connections';
import { startAzurite, type RunningAzurite } from '../../packages/functions-local/src';

/**
 * The same blob work against an Azurite with its lookups led by the blob's name and one without: every answer
 * must be the same, the failures too (a delete with snapshots present, a missing snapshot).
 */
async function script(azurite: RunningAzurite): Promise<unknown[]> {
    const storage = connectionFromString(azurite.connectionString);
    const seen: unknown[] = [];
    const status = async (work: Promise<unknown>): Promise<string> =>
        work.then(
            () => 'ok',
            (e: { statusCode?: number; code?: string }) => `${e.statusCode} ${e.code}`,
        );
    for (const name of ['a', 'b']) {
        const container = storage.blob.getContainerClient(`lookups-${name}`);
        await container.create();
        for (let i = 0; i < 20; i++) await container.getPageBlobClient(`disk-${i}.vhd`).create(4096);
    }
    const container = storage.blob.getContainerClient('lookups-a');
    const disk = container.getPageBlobClient('disk-3.vhd');
    const snapshots: string[] = [];
    for (let i = 1; i <= 3; i++) {
        await disk.uploadPages(Buffer.alloc(512, i), 0, 512);
        snapshots.push((await disk.createSnapshot()).snapshot!);
    }
    for (const [i, s] of snapshots.entries()) {
        const bytes = await disk.withSnapshot(s).downloadToBuffer(0, 512);
        seen.push(['snapshot', i, bytes[0]]);
    }
    seen.push(['base', (await disk.downloadToBuffer(0, 512))[0]]);
    seen.push([
        'same name, other container',
        (
            await storage.blob.getContainerClient('lookups-b').getPageBlobClient('disk-3.vhd').downloadToBuffer(0, 512)
        )[0],
    ]);
    seen.push(['delete with snapshots', await status(disk.delete())]);
    seen.push(['delete one snapshot', await status(disk.withSnapshot(snapshots[1]!).delete())]);
    seen.push(['that snapshot again', await status(disk.withSnapshot(snapshots[1]!).downloadToBuffer(0, 512))]);
    seen.push(['delete only snapshots', await status(disk.delete({ deleteSnapshots: 'only' }))]);
    seen.push(['base after', await status(disk.getProperties())]);
    seen.push(['delete base', await status(disk.delete())]);
    seen.push(['base gone', await status(disk.downloadToBuffer(0, 512))]);
    seen.push(['other still', await status(container.getPageBlobClient('disk-4.vhd').getProperties())]);
    const other = container.getPageBlobClient('disk-5.vhd');
    await other.createSnapshot();
    seen.push(['delete with include', await status(other.delete({ deleteSnapshots: 'include' }))]);
    const listed: string[] = [];
    for await (const b of container.listBlobsFlat({ includeSnapshots: true }))
        listed.push(`${b.name}${b.snapshot ? '@' : ''}`);
    seen.push(['listed', listed]);

    // Tables: partition queries, a range in one, an `or` across two, a key with a quote, and a partition of more
    // than one page (1,000 entities), read through its continuation.
    const table = storage.tableClient('lookups');
    await table.createTable();
    const entities = [];
    for (let p = 0; p < 5; p++)
        for (let r = 0; r < 30; r++)
            entities.push({ partitionKey: `vm-${p}`, rowKey: `r${String(r).padStart(2, '0')}`, n: r });
    entities.push({ partitionKey: "it's", rowKey: 'r01', n: 1 });
    for (let r = 0; r < 1005; r++)
        entities.push({ partitionKey: 'big', rowKey: `r${String(r).padStart(4, '0')}`, n: r });
    const byPartition = new Map<string, typeof entities>();
    for (const e of entities) byPartition.set(e.partitionKey, [...(byPartition.get(e.partitionKey) ?? []), e]);
    for (const group of byPartition.values()) {
        for (let i = 0; i < group.length; i += 100) {
            await table.submitTransaction(group.slice(i, i + 100).map((e) => ['create', e] as ['create', typeof e]));
        }
    }
    for (const filter of [
        "PartitionKey eq 'vm-3'",
        "PartitionKey eq 'vm-3' and RowKey ge 'r25'",
        "PartitionKey eq 'vm-3' and n lt 4",
        "PartitionKey eq 'vm-1' or PartitionKey eq 'vm-2'",
        "PartitionKey eq 'it''s'",
        "PartitionKey eq 'big' and n ge 990",
        "PartitionKey eq 'big'",
        "RowKey eq 'r07'",
    ]) {
        const rows: string[] = [];
        for await (const e of table.listEntities({ queryOptions: { filter } }))
            rows.push(`${e.partitionKey}/${e.rowKey}`);
        seen.push([filter, rows.length, rows.slice(0, 3), rows.slice(-3)]);
    }
    return seen;
}

describe("Azurite's blob lookups by name (azuriteLookups.ts)", () => {
    it('are on for the LokiJS version checked, and give the same answers as without them', async () => {
        const before = process.env.HVR_AZURITE_LOOKUPS;
        const indexed = await startAzurite();
        let plain: RunningAzurite | undefined;
        try {
            expect(indexed.lookups).toBe('indexed');
            process.env.HVR_AZURITE_LOOKUPS = 'plain';
            plain = await startAzurite();
            expect(plain.lookups).toBe('plain');
            const withLookups = await script(indexed);
            expect(withLookups).toEqual(await script(plain));
            expect(withLookups).toContainEqual(['delete with snapshots', '409 SnapshotsPresent']);
            expect(withLookups).toContainEqual(['that snapshot again', '404 BlobNotFound']);
            expect(withLookups).toContainEqual(['base gone', '404 BlobNotFound']);
            expect(withLookups).toContainEqual([
                "PartitionKey eq 'big'",
                1005,
                ['big/r0000', 'big/r0001', 'big/r0002'],
                ['big/r1002', 'big/r1003', 'big/r1004'],
            ]);
            expect(withLookups).toContainEqual(["PartitionKey eq 'it''s'", 1, ["it's/r01"], ["it's/r01"]]);
        } finally {
            if (before === undefined) delete process.env.HVR_AZURITE_LOOKUPS;
            else process.env.HVR_AZURITE_LOOKUPS = before;
            await indexed.stop();
            await plain?.stop();
        }
    }, 120_000);
});
