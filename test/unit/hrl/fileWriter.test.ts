import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HrlFileWriter, HrlWriteOptions, openFileSource, validateHrl, writeHrl } from '../../../shared/hrl';

describe('HrlFileWriter', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'hrl-writer-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const options: HrlWriteOptions = {
        uniqueId: '0f0e0d0c-0b0a-0908-0706-050403020100',
        previousUniqueId: '572fc7ff-1f03-49ab-8c2d-0123456789ab',
        createdAt: new Date('2024-06-01T00:00:00Z'),
    };

    it('streams to a file the same bytes writeHrl builds in memory, across batches and blocks', async () => {
        // 300 entries (three blocks) and ~20 MiB of data, so several 8 MiB batches are flushed.
        const entries = Array.from({ length: 300 }, (_, i) => ({
            diskOffset: i * 1024 * 1024,
            data: randomBytes(i % 50 === 0 ? 4 * 1024 * 1024 : 4096),
            timestamp: i,
        }));
        const path = join(dir, 'a.hrl');
        const writer = await HrlFileWriter.create(path, options);
        const reused = Buffer.alloc(4 * 1024 * 1024);
        for (const e of entries) {
            // The writer must copy: the caller reuses one buffer for every entry.
            const view = reused.subarray(0, e.data.length);
            e.data.copy(view);
            await writer.add(e.diskOffset, view, e.timestamp);
        }
        const header = await writer.close();
        const expected = writeHrl(entries, options);
        expect(header).toEqual(expected.header);
        expect(readFileSync(path).equals(expected.log)).toBe(true);
        const source = await openFileSource(path);
        try {
            const index = await validateHrl(source, { readSize: 1024 * 1024 });
            expect(index.entryCount).toBe(300);
        } finally {
            await source.close();
        }
    });

    it('writes EOLLocation 0 for a log that was not closed', async () => {
        const path = join(dir, 'open.hrl');
        const writer = await HrlFileWriter.create(path, { ...options, closed: false });
        await writer.add(0, Buffer.alloc(512, 1));
        expect((await writer.close()).eolLocation).toBe(0);
        const source = await openFileSource(path);
        try {
            await expect(validateHrl(source)).rejects.toMatchObject({ code: 'HRL_NOT_CLOSED' });
        } finally {
            await source.close();
        }
    });

    it('refuses unaligned writes and bad options before touching anything', async () => {
        await expect(HrlFileWriter.create(join(dir, 'x.hrl'), { metadataSize: 1000 })).rejects.toThrow(RangeError);
        await expect(HrlFileWriter.create(join(dir, 'x.hrl'), { uniqueId: 'nope' })).rejects.toThrow(RangeError);
        const writer = await HrlFileWriter.create(join(dir, 'y.hrl'));
        await expect(writer.add(100, Buffer.alloc(512))).rejects.toThrow(RangeError);
        await expect(writer.add(0, Buffer.alloc(100))).rejects.toThrow(RangeError);
        await writer.abandon();
    });
});
