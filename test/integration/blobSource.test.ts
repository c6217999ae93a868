import { BlockBlobClient } from '@azure/storage-blob';
import { randomBytes } from 'node:crypto';
import { HvrError } from '../../shared/errors';
import { HrlError, readHrlData, validateHrl, writeHrl } from '../../shared/hrl';
import { openBlobSource } from '../../shared/storage/blobSource';
import { testStorage, uniqueName } from '../support/azurite';

describe('openBlobSource against Azurite', () => {
    const storage = testStorage();
    const container = storage.blob.getContainerClient(uniqueName('logs'));
    beforeAll(async () => {
        await container.create();
    });
    afterAll(async () => {
        await container.delete();
    });

    async function upload(name: string, bytes: Buffer): Promise<BlockBlobClient> {
        const blob = container.getBlockBlobClient(name);
        await blob.uploadData(bytes);
        return blob;
    }

    it('validates and streams a log with ranged reads, data identical to what was written', async () => {
        const entries = Array.from({ length: 200 }, (_, i) => ({
            diskOffset: i * 8192,
            data: randomBytes(4096 + (i % 3) * 512),
        }));
        const { log } = writeHrl(entries);
        const source = await openBlobSource(await upload('a.hrl', log));
        expect(source.size).toBe(log.length);
        const index = await validateHrl(source, { diskSize: 2 * 1024 * 1024, readSize: 64 * 1024 });
        expect(index.entryCount).toBe(200);
        let i = 0;
        for await (const piece of readHrlData(source, index, { readSize: 64 * 1024 })) {
            if (piece.entryOffset === 0) expect(piece.entry.index).toBe(i++);
            const original = entries[piece.entry.index]!.data;
            expect(piece.data.equals(original.subarray(piece.entryOffset, piece.entryOffset + piece.data.length))).toBe(
                true,
            );
        }
        expect(i).toBe(200);
    });

    it('reads a range larger than one GET as several, in order', async () => {
        const bytes = randomBytes(20 * 1024 * 1024 + 512);
        const source = await openBlobSource(await upload('big.bin', bytes));
        const got = await source.read(512, bytes.length - 512);
        expect(got.equals(bytes.subarray(512))).toBe(true);
    });

    it('reads only the version it was opened for: a blob replaced since fails with CONCURRENT_UPDATE', async () => {
        const blob = await upload('versioned.hrl', Buffer.alloc(4096, 1));
        const props = await blob.getProperties();
        const version = { size: props.contentLength!, etag: props.etag! };
        expect((await (await openBlobSource(blob, { version })).read(0, 4096)).equals(Buffer.alloc(4096, 1))).toBe(
            true,
        );
        await blob.uploadData(Buffer.alloc(4096, 2));
        const stale = await openBlobSource(blob, { version });
        await expect(stale.read(0, 4096)).rejects.toMatchObject({ code: 'CONCURRENT_UPDATE' });
    });

    it('rejects a read past the end of the blob as HRL_TRUNCATED', async () => {
        const source = await openBlobSource(await upload('small.bin', Buffer.alloc(1024, 1)));
        await expect(source.read(512, 1024)).rejects.toMatchObject({ code: 'HRL_TRUNCATED' });
    });

    it('fails with CONCURRENT_UPDATE when the blob is overwritten between reads', async () => {
        const blob = await upload('changing.hrl', writeHrl([{ diskOffset: 0, data: Buffer.alloc(512, 1) }]).log);
        const source = await openBlobSource(blob);
        await source.read(0, 4096);
        await blob.uploadData(writeHrl([{ diskOffset: 0, data: Buffer.alloc(512, 2) }]).log);
        const err = await source.read(0, 4096).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(HvrError);
        expect(err).toMatchObject({ code: 'CONCURRENT_UPDATE', recoverable: true });
    });

    it('reports a missing blob as NOT_FOUND', async () => {
        await expect(openBlobSource(container.getBlobClient('missing.hrl'))).rejects.toMatchObject({
            code: 'NOT_FOUND',
        });
    });

    it('rejects a truncated upload through the reader', async () => {
        const { log } = writeHrl([{ diskOffset: 0, data: randomBytes(8192) }]);
        const source = await openBlobSource(await upload('cut.hrl', log.subarray(0, log.length - 4096)));
        await expect(validateHrl(source)).rejects.toBeInstanceOf(HrlError);
    });

    it('stops a read when the caller aborts', async () => {
        const source = await openBlobSource(await upload('abort.bin', randomBytes(4096)));
        const controller = new AbortController();
        controller.abort();
        await expect(source.read(0, 4096, controller.signal)).rejects.toThrow();
    });
});
