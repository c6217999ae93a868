import { connectionFromString } from '../../shared/storage/connections';
import { startAzurite, type RunningAzurite } from '../../packages/functions-local/src';

/**
 * The same blob work against an Azurite with its lookups led by the blob's name and one without: every answer
 * must be the same, the failures too (a delete with snapshots present, a missing snapshot).
 */
async function script(azurite: RunningAzurite): Promise<unknown[]> {
    const storage = connectionFromString(azurite.connectionString);
    const seen: unknown[] = [];
    const status = async (work: Promise<unknown>): Promise<number | string> =>
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
        } finally {
            if (before === undefined) delete process.env.HVR_AZURITE_LOOKUPS;
            else process.env.HVR_AZURITE_LOOKUPS = before;
            await indexed.stop();
            await plain?.stop();
        }
    }, 120_000);
});
