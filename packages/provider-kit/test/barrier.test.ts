import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageBarrier } from '../src';

describe('ImageBarrier', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'kit-barrier-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    async function writeAt(path: string, offset: number, data: Buffer): Promise<void> {
        const h = await open(path, 'r+');
        await h.write(data, 0, data.length, offset);
        await h.close();
    }

    it('finds the data at the first barrier, then only the blocks changed since, and keeps the copy still', async () => {
        const image = join(dir, 'os.raw');
        writeFileSync(image, Buffer.alloc(0));
        truncateSync(image, 1024 * 1024);
        await writeAt(image, 8192, Buffer.alloc(100, 1));
        const barrier = await ImageBarrier.open(image, join(dir, 'os.copy'));
        expect(await barrier.take()).toEqual([{ offset: 8192, length: 4096 }]);

        await writeAt(image, 0, Buffer.alloc(5000, 2));
        await writeAt(image, 1024 * 1024 - 512, Buffer.alloc(512, 3));
        // Between barriers the copy is the image at the last one.
        expect((await barrier.read(0, 16)).equals(Buffer.alloc(16))).toBe(true);
        expect(await barrier.take()).toEqual([
            { offset: 0, length: 8192 },
            { offset: 1024 * 1024 - 4096, length: 4096 },
        ]);
        expect(readFileSync(join(dir, 'os.copy')).equals(readFileSync(image))).toBe(true);
        await writeAt(image, 0, Buffer.alloc(5000, 2));
        expect(await barrier.take()).toEqual([]);

        await barrier.keepAs(join(dir, 'kept.raw'));
        expect(readFileSync(join(dir, 'kept.raw')).equals(readFileSync(image))).toBe(true);
        await barrier.close();

        // A restart resumes from the last copy; a resized image is refused.
        const resumed = await ImageBarrier.open(image, join(dir, 'os.copy'), { resume: true });
        expect(await resumed.take()).toEqual([]);
        truncateSync(image, 2 * 1024 * 1024);
        await expect(resumed.take()).rejects.toThrow(/changed size/);
        await resumed.close();
    });

    it('refuses an image that is not whole sectors', async () => {
        const image = join(dir, 'odd.raw');
        writeFileSync(image, Buffer.alloc(1000));
        await expect(ImageBarrier.open(image, join(dir, 'odd.copy'))).rejects.toThrow(/512-byte sectors/);
    });
});
