import { testStorage, uniqueName } from '../support/azurite';

describe('the Azurite that the test run starts', () => {
    it('enforces sequence-number conditions on page writes, which the merge relies on', async () => {
        const storage = testStorage();
        const container = storage.blob.getContainerClient(uniqueName('seq'));
        await container.create();
        try {
            const page = container.getPageBlobClient('disk.vhd');
            await page.create(4096);
            await page.uploadPages(Buffer.alloc(512, 1), 0, 512, { conditions: { ifSequenceNumberEqualTo: 0 } });
            await page.updateSequenceNumber('update', 1);
            await expect(
                page.uploadPages(Buffer.alloc(512, 2), 0, 512, { conditions: { ifSequenceNumberEqualTo: 0 } }),
            ).rejects.toMatchObject({ statusCode: 412 });
            const bytes = await page.downloadToBuffer(0, 512);
            expect(bytes.equals(Buffer.alloc(512, 1))).toBe(true);
        } finally {
            await container.delete();
        }
    });
});
