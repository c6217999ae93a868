import { AnonymousCredential, BlockBlobClient, ContainerClient, RestError } from '@azure/storage-blob';
import { readOnlyUrl, writeOnlyUrl } from '../../shared/storage/readOnlyUrl';
import { testStorage, uniqueName } from '../support/azurite';

const bound = () => ({ abortSignal: AbortSignal.timeout(10_000) });

async function status(promise: Promise<unknown>): Promise<number | undefined> {
    try {
        await promise;
    } catch (err) {
        if (err instanceof RestError) return err.statusCode;
        throw err;
    }
    return 200;
}

/** The link with its blob path swapped for another one (same signature). */
function retarget(url: string, from: string, to: string): string {
    return url.replace(from, to);
}

describe("what a failback's provider links can and cannot do (SAS against Azurite)", () => {
    const conn = testStorage();
    let container: string;
    const log = 'vm-a1/fb-1/Synchronize/d0.hrl';
    const other = 'vm-a1/fb-1/Synchronize/d1.hrl';
    const manifest = 'vm-a1/fb-1/Synchronize/d0/1.manifest';

    beforeAll(async () => {
        container = uniqueName('secfailback');
        await conn.blob.getContainerClient(container).create(bound());
        for (const name of [log, other]) {
            await conn.blob.getContainerClient(container).getBlockBlobClient(name).upload('log bytes', 9, bound());
        }
    });

    it('the read-only log link reads exactly its blob: no write, no delete, no other blob, no listing', async () => {
        const { url } = await readOnlyUrl(conn, container, log, 60);
        const blob = new BlockBlobClient(url, new AnonymousCredential());
        expect((await blob.downloadToBuffer(0, undefined, bound())).toString()).toBe('log bytes');
        expect(await status(blob.upload('tampered', 8, bound()))).toBe(403);
        expect(await status(blob.delete(bound()))).toBe(403);
        const elsewhere = new BlockBlobClient(retarget(url, log, other), new AnonymousCredential());
        expect(await status(elsewhere.downloadToBuffer(0, undefined, bound()))).toBe(403);
        const sas = url.slice(url.indexOf('?'));
        const listing = new ContainerClient(
            `${conn.blob.getContainerClient(container).url}${sas}`,
            new AnonymousCredential(),
        );
        expect(await status(listing.listBlobsFlat().next())).toBe(403);
    });

    it('the write-only manifest link uploads its blob and cannot read it back or write another', async () => {
        const { url } = await writeOnlyUrl(conn, container, manifest, 60);
        const blob = new BlockBlobClient(url, new AnonymousCredential());
        expect(await status(blob.upload('manifest', 8, bound()))).toBe(200);
        expect(await status(blob.downloadToBuffer(0, undefined, bound()))).toBe(403);
        const elsewhere = new BlockBlobClient(retarget(url, manifest, log), new AnonymousCredential());
        expect(await status(elsewhere.upload('overwrite the log', 17, bound()))).toBe(403);
    });

    it('an expired log link is refused (the provider reports GRANT_EXPIRED and writes nothing)', async () => {
        // Signed like any link, with its expiry a minute ago.
        const { url, expiresOn } = await readOnlyUrl(conn, container, log, -1);
        expect(Date.parse(expiresOn)).toBeLessThan(Date.now());
        const blob = new BlockBlobClient(url, new AnonymousCredential());
        expect(await status(blob.downloadToBuffer(0, undefined, bound()))).toBe(403);
    });
});
