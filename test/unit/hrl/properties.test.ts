import fc from 'fast-check';
import { bufferSource, HrlError, HrlWriteEntry, readHrlData, validateHrl, writeHrl } from '../../../shared/hrl';

const DISK_SIZE = 256 * 1024;

/** Deterministic bytes for an entry, cheaper to shrink than arbitrary arrays. */
function fill(sectors: number, seed: number): Buffer {
    const b = Buffer.alloc(sectors * 512);
    let x = seed | 1;
    for (let i = 0; i < b.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
    }
    return b;
}

const entryArb = fc
    .record({
        sector: fc.integer({ min: 0, max: DISK_SIZE / 512 - 1 }),
        sectors: fc.integer({ min: 0, max: 24 }),
        seed: fc.integer(),
        timestamp: fc.integer({ min: 0, max: 0xffffffff }),
    })
    .map(({ sector, sectors, seed, timestamp }): HrlWriteEntry => {
        const fitting = Math.min(sectors, DISK_SIZE / 512 - sector);
        return { diskOffset: sector * 512, data: fill(fitting, seed), timestamp };
    });

const optionsArb = fc.record({
    uniqueId: fc.uuid(),
    previousUniqueId: fc.uuid(),
    vhd2DataWriteGuid: fc.uuid(),
    createdAt: fc.integer({ min: 0, max: 0xffffffff }).map((s) => new Date(Date.UTC(2000, 0, 1) + s * 1000)),
    metadataSize: fc.constantFrom(512, 1024, 4096, 8192),
    dataChecksums: fc.boolean(),
});

describe('MS-HRL properties', () => {
    it('reads back any written log identically', async () => {
        await fc.assert(
            fc.asyncProperty(
                fc.array(entryArb, { maxLength: 60 }),
                optionsArb,
                fc.integer({ min: 1, max: 40 }),
                async (entries, options, readSectors) => {
                    const { log, header } = writeHrl(entries, options);
                    const index = await validateHrl(bufferSource(log), { diskSize: DISK_SIZE });
                    expect(index.header).toEqual(header);
                    expect(index.header.uniqueId).toBe(options.uniqueId.toLowerCase());
                    expect(index.header.previousUniqueId).toBe(options.previousUniqueId.toLowerCase());
                    expect(index.header.createdAt.getTime()).toBe(options.createdAt.getTime());
                    expect(index.entryCount).toBe(entries.length);
                    const rebuilt = entries.map(() => [] as Buffer[]);
                    for await (const piece of readHrlData(bufferSource(log), index, {
                        readSize: readSectors * 512,
                        verify: true,
                    })) {
                        expect(piece.diskOffset).toBe(piece.entry.diskOffset + piece.entryOffset);
                        rebuilt[piece.entry.index]!.push(Buffer.from(piece.data));
                    }
                    entries.forEach((e, i) => {
                        const got = index.entry(i);
                        expect([got.diskOffset, got.length, got.timestamp]).toEqual([
                            e.diskOffset,
                            e.data.length,
                            e.timestamp,
                        ]);
                        expect(Buffer.concat(rebuilt[i]!).equals(e.data)).toBe(true);
                    });
                },
            ),
            { numRuns: 150 },
        );
    });

    const corruptionArb = fc.oneof(
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
        fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), bit: fc.constant(0) }),
        fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 255 }) }),
    );

    it('rejects a corrupted log with an HrlError, or, if it stays valid, never yields an entry outside the disk', async () => {
        await fc.assert(
            fc.asyncProperty(
                fc.array(entryArb, { minLength: 1, maxLength: 40 }),
                optionsArb,
                fc.array(corruptionArb, { minLength: 1, maxLength: 4 }),
                fc.boolean(),
                async (entries, options, corruptions, aimAtMetadata) => {
                    let log = Buffer.from(writeHrl(entries, options).log);
                    const metadataStart = log.length - options.metadataSize;
                    for (const c of corruptions) {
                        // Half the runs aim at the header and the last metadata block, where most rules live.
                        const span = aimAtMetadata ? 4096 + options.metadataSize : log.length;
                        let at = c.at % span;
                        if (aimAtMetadata && at >= 4096) at = metadataStart + (at - 4096);
                        if (c.kind === 'flip') log[at]! ^= 1 << c.bit;
                        else if (c.kind === 'overwrite') log[at] = c.bit;
                        else log = log.subarray(0, at);
                    }
                    try {
                        const index = await validateHrl(bufferSource(log), { diskSize: DISK_SIZE });
                        for (const e of index.entries()) {
                            expect(e.diskOffset % 512).toBe(0);
                            expect(e.diskOffset + e.length).toBeLessThanOrEqual(DISK_SIZE);
                            expect(e.logOffset + e.length).toBeLessThanOrEqual(log.length);
                        }
                    } catch (err) {
                        if (!(err instanceof HrlError)) throw err;
                        expect(err.code).toMatch(/^HRL_/);
                        expect(err.message).not.toContain('\n');
                    }
                },
            ),
            { numRuns: 400 },
        );
    });
});
