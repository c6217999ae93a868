import { randomBytes } from 'node:crypto';
import {
    bufferSource,
    HrlError,
    readHrlData,
    readHrlHeader,
    readHrlIndex,
    validateHrl,
    verifyHrlData,
    writeHrl,
    HrlWriteEntry,
} from '../../../shared/hrl';
import {
    H,
    HRL_HEADER_SIZE,
    headerChecksum,
    ME,
    MH,
    metadataHeaderChecksum,
    entryChecksum,
} from '../../../shared/hrl/format';

const CREATED = new Date('2024-03-01T12:00:00Z');
const IDS = {
    uniqueId: '11111111-2222-3333-4444-555555555555',
    previousUniqueId: '572fc7ff-1f03-49ab-8c2d-0123456789ab',
    vhd2DataWriteGuid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
};

function sampleEntries(count: number, seed = 1): HrlWriteEntry[] {
    const out: HrlWriteEntry[] = [];
    for (let i = 0; i < count; i++) {
        const sectors = ((i * 7 + seed) % 9) + 1;
        out.push({ diskOffset: ((i * 13 + seed) % 200) * 512, data: randomBytes(sectors * 512), timestamp: 1000 + i });
    }
    return out;
}

/** Re-seals the header checksum after a test edits a header field, so only the intended rule is broken. */
function resealHeader(log: Buffer): void {
    log.writeUInt32LE(headerChecksum(log.subarray(0, HRL_HEADER_SIZE)), H.checksum);
}

function resealMetadata(log: Buffer, location: number): void {
    log.writeUInt32LE(metadataHeaderChecksum(log, location), location + MH.checksum);
}

function resealEntry(log: Buffer, at: number): void {
    log.writeUInt32LE(entryChecksum(log, at), at + ME.checksum);
}

async function rejection(log: Buffer, diskSize?: number): Promise<HrlError> {
    try {
        await validateHrl(bufferSource(log), { diskSize });
    } catch (err) {
        if (err instanceof HrlError) return err;
        throw err;
    }
    throw new Error('the log was accepted');
}

describe('readHrlIndex and readHrlData on a well-formed log', () => {
    it('reads back the header fields and every entry in log order, across several metadata blocks', async () => {
        const entries = sampleEntries(300);
        const { log, header } = writeHrl(entries, { ...IDS, createdAt: CREATED });
        const index = await validateHrl(bufferSource(log), { diskSize: 1 << 20 });
        expect(index.header).toEqual(header);
        expect(index.header.createdAt.toISOString()).toBe(CREATED.toISOString());
        expect(index.header.uniqueId).toBe(IDS.uniqueId);
        expect(index.header.previousUniqueId).toBe(IDS.previousUniqueId);
        expect(index.header.vhd2DataWriteGuid).toBe(IDS.vhd2DataWriteGuid);
        expect(index.entryCount).toBe(300);
        expect(index.metadataBlockCount).toBe(1 + Math.ceil(300 / 127));
        expect(index.header.eolLocation).toBe(log.length);
        expect(index.hasDataChecksums).toBe(true);
        const got = [...index.entries()].map((e) => ({
            diskOffset: e.diskOffset,
            length: e.length,
            timestamp: e.timestamp,
        }));
        expect(got).toEqual(
            entries.map((e) => ({ diskOffset: e.diskOffset, length: e.data.length, timestamp: e.timestamp })),
        );
        let i = 0;
        for await (const piece of readHrlData(bufferSource(log), index, { verify: true })) {
            expect(piece.entry.index).toBe(i);
            expect(piece.data.equals(entries[i]!.data)).toBe(true);
            i++;
        }
        expect(i).toBe(300);
    });

    it('yields an entry longer than readSize as in-order sector-aligned pieces', async () => {
        const big = randomBytes(10 * 512);
        const { log } = writeHrl([
            { diskOffset: 512, data: big },
            { diskOffset: 0, data: Buffer.alloc(512, 9) },
        ]);
        const index = await readHrlIndex(bufferSource(log));
        const pieces = [];
        for await (const p of readHrlData(bufferSource(log), index, { readSize: 1536, verify: true })) pieces.push(p);
        expect(pieces.map((p) => [p.entry.index, p.entryOffset, p.diskOffset, p.data.length])).toEqual([
            [0, 0, 512, 1536],
            [0, 1536, 2048, 1536],
            [0, 3072, 3584, 1536],
            [0, 4608, 5120, 512],
            [1, 0, 0, 512],
        ]);
        expect(Buffer.concat(pieces.slice(0, 4).map((p) => p.data)).equals(big)).toBe(true);
    });
});

describe('validation rejects, with a typed error naming offset and value', () => {
    const entries = sampleEntries(5);
    const fresh = (): Buffer => writeHrl(entries, { ...IDS, createdAt: CREATED }).log;
    const lastBlock = (log: Buffer): number => Number(log.readBigUInt64LE(H.eolLocation)) - 4096;
    const entryAt = (log: Buffer, i: number): number => lastBlock(log) + 32 + 32 * i;

    it('a file shorter than the header', async () => {
        const err = await rejection(fresh().subarray(0, 4095));
        expect(err.code).toBe('HRL_TRUNCATED');
        expect(err.value).toBe(4095);
    });

    it('a wrong cookie, but accepts the space-padded cookie of the spec example', async () => {
        const log = fresh();
        log.write('msctlox', 0, 'ascii');
        expect((await rejection(log)).code).toBe('HRL_BAD_COOKIE');
        const spaced = fresh();
        spaced[7] = 0x20;
        resealHeader(spaced);
        await expect(validateHrl(bufferSource(spaced))).resolves.toBeDefined();
        spaced[7] = 0x01;
        resealHeader(spaced);
        expect((await rejection(spaced)).code).toBe('HRL_BAD_COOKIE');
    });

    it('a v1 log with its own message, and any other version', async () => {
        const v1 = fresh();
        v1.writeUInt32LE(0x00010000, H.version);
        resealHeader(v1);
        const err = await rejection(v1);
        expect(err.code).toBe('HRL_UNSUPPORTED_VERSION');
        expect(err.message).toMatch(/v1/);
        const v3 = fresh();
        v3.writeUInt32LE(0x00030000, H.version);
        resealHeader(v3);
        expect((await rejection(v3)).message).toMatch(/0x00030000/);
    });

    it('a header checksum mismatch, keeping stored and computed values in the message', async () => {
        const log = fresh();
        const stored = log.readUInt32LE(H.checksum);
        log[200] = 1; // reserved byte: the checksum catches it first
        const err = await rejection(log);
        expect(err.code).toBe('HRL_HEADER_CHECKSUM');
        expect(err.offset).toBe(40);
        expect(err.message).toContain(String(stored));
        expect(err.message).toContain(String((stored - 1) >>> 0));
    });

    it('a log that was not closed (EOLLocation 0) as HRL_NOT_CLOSED', async () => {
        const { log } = writeHrl(entries, { closed: false });
        const err = await rejection(log);
        expect(err.code).toBe('HRL_NOT_CLOSED');
        expect(err.recoverable).toBe(false);
    });

    it.each([
        ['FileType', (b: Buffer) => b.writeUInt32LE(1, H.fileType), H.fileType],
        ['Flags', (b: Buffer) => b.writeUInt16LE(2, H.flags), H.flags],
        ['reserved bytes', (b: Buffer) => (b[4000] = 7), 4000],
        ['MetadataSize not a multiple of 512', (b: Buffer) => b.writeUInt32LE(4000, H.metadataSize), H.metadataSize],
        ['MetadataSize below 512', (b: Buffer) => b.writeUInt32LE(0, H.metadataSize), H.metadataSize],
    ])('a bad %s', async (_name, edit, offset) => {
        const log = fresh();
        edit(log);
        resealHeader(log);
        const err = await rejection(log);
        expect(err.code).toBe('HRL_HEADER_FIELD');
        expect(err.offset).toBe(offset);
        expect(err.message).toContain(`offset ${offset}`);
    });

    it('an EOLLocation past the end of the file (a truncated upload)', async () => {
        const log = fresh();
        const err = await rejection(log.subarray(0, log.length - 512));
        expect(err.code).toBe('HRL_TRUNCATED');
        expect(err.value).toBe(log.length);
    });

    it('a TotalMetadataEntries the file cannot hold, before allocating anything for it', async () => {
        const log = fresh();
        log.writeBigUInt64LE(2n ** 60n, H.totalMetadataEntries);
        resealHeader(log);
        const err = await rejection(log);
        expect(err.code).toBe('HRL_METADATA_COUNT');
        expect(err.offset).toBe(96);
    });

    it('a TotalMetadataEntries that does not match the blocks', async () => {
        for (const total of [4n, 6n]) {
            const log = fresh();
            log.writeBigUInt64LE(total, H.totalMetadataEntries);
            resealHeader(log);
            expect((await rejection(log)).code).toBe('HRL_METADATA_COUNT');
        }
    });

    it('a metadata block checksum mismatch', async () => {
        const log = fresh();
        log[lastBlock(log) + MH.checksum]! ^= 1;
        const err = await rejection(log);
        expect(err.code).toBe('HRL_METADATA_CHECKSUM');
        expect(err.offset).toBe(lastBlock(log) + 12);
    });

    it('ValidMetadataEntries beyond the block capacity', async () => {
        const log = fresh();
        log.writeUInt32LE(128, lastBlock(log) + MH.validEntries);
        resealMetadata(log, lastBlock(log));
        expect((await rejection(log)).code).toBe('HRL_METADATA_COUNT');
    });

    it('a PreviousMetadataLocation that does not move back by at least a block, or leaves the file', async () => {
        for (const distance of [1024n, 2n ** 40n]) {
            const log = fresh();
            log.writeBigUInt64LE(distance, lastBlock(log) + MH.previousLocation);
            resealMetadata(log, lastBlock(log));
            const err = await rejection(log);
            expect(err.code).toBe('HRL_METADATA_LOCATION');
            expect(err.offset).toBe(lastBlock(log));
        }
    });

    it('metadata reserved bytes that are not zero', async () => {
        const log = fresh();
        log[lastBlock(log) + 20] = 1;
        resealMetadata(log, lastBlock(log));
        expect((await rejection(log)).code).toBe('HRL_HEADER_FIELD');
    });

    it('an entry checksum mismatch', async () => {
        const log = fresh();
        log[entryAt(log, 2) + ME.timestamp]! ^= 4;
        const err = await rejection(log);
        expect(err.code).toBe('HRL_ENTRY_CHECKSUM');
        expect(err.offset).toBe(entryAt(log, 2) + 8);
    });

    it.each([
        ['MetaOperation other than write', (b: Buffer, at: number) => (b[at + ME.metaOperation] = 2)],
        ['an unaligned ByteOffset', (b: Buffer, at: number) => b.writeBigUInt64LE(4097n, at + ME.byteOffset)],
        ['a non-zero Location', (b: Buffer, at: number) => (b[at + ME.location] = 1)],
        ['a ByteOffset past 2^53', (b: Buffer, at: number) => b.writeBigUInt64LE(2n ** 63n, at + ME.byteOffset)],
    ])('an entry with %s', async (_name, edit) => {
        const log = fresh();
        edit(log, entryAt(log, 1));
        resealEntry(log, entryAt(log, 1));
        expect((await rejection(log)).code).toBe('HRL_ENTRY_FIELD');
    });

    it('entry data lengths that do not fill the data region exactly', async () => {
        const log = fresh();
        const at = entryAt(log, 0);
        log.writeUInt32LE(log.readUInt32LE(at + ME.dataLength) + 512, at + ME.dataLength);
        resealEntry(log, at);
        const err = await rejection(log);
        expect(err.code).toBe('HRL_DATA_LAYOUT');
        expect(err.offset).toBe(lastBlock(log));
    });

    it('an entry past the end of the disk, only when the disk size is known', async () => {
        const log = writeHrl([{ diskOffset: 1024 * 1024 - 512, data: Buffer.alloc(1024, 1) }]).log;
        const err = await rejection(log, 1024 * 1024);
        expect(err.code).toBe('HRL_ENTRY_OUT_OF_DISK');
        expect(err.value).toBe(1024 * 1024 - 512);
        await expect(validateHrl(bufferSource(log))).resolves.toBeDefined();
        await expect(validateHrl(bufferSource(log), { diskSize: 1024 * 1024 + 512 })).resolves.toBeDefined();
    });

    it('a data checksum mismatch, but only data that carries a checksum', async () => {
        const log = fresh();
        log[8192 + 100]! ^= 0x10;
        const index = await readHrlIndex(bufferSource(log));
        const err = await verifyHrlData(bufferSource(log), index).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(HrlError);
        expect(err).toMatchObject({ code: 'HRL_DATA_CHECKSUM', offset: 8192 });
        const unchecked = writeHrl(entries, { dataChecksums: false }).log;
        unchecked[8192 + 100]! ^= 0x10;
        const plain = await validateHrl(bufferSource(unchecked));
        expect(plain.hasDataChecksums).toBe(false);
    });

    it('reports a bad data checksum from readHrlData before yielding any of that read', async () => {
        const log = fresh();
        const index = await readHrlIndex(bufferSource(log));
        const second = index.entry(1);
        log[second.logOffset]! ^= 1;
        const seen: number[] = [];
        const run = async (): Promise<void> => {
            for await (const p of readHrlData(bufferSource(log), index, { verify: true })) seen.push(p.entry.index);
        };
        await expect(run()).rejects.toMatchObject({ code: 'HRL_DATA_CHECKSUM', value: { entry: 1 } });
        expect(seen).toEqual([]);
    });

    it('reads the header alone without touching the metadata', async () => {
        const log = fresh();
        log[lastBlock(log)]! ^= 1;
        await expect(readHrlHeader(bufferSource(log))).resolves.toMatchObject({ uniqueId: IDS.uniqueId });
    });

    it('stops when the signal aborts', async () => {
        const controller = new AbortController();
        controller.abort(new Error('deadline'));
        await expect(validateHrl(bufferSource(fresh()), { signal: controller.signal })).rejects.toThrow('deadline');
    });

    it('accepts 512-byte metadata blocks (15 entries each)', async () => {
        const many = sampleEntries(40);
        const { log } = writeHrl(many, { metadataSize: 512 });
        const index = await validateHrl(bufferSource(log));
        expect(index.metadataBlockCount).toBe(1 + 3);
        expect(index.entryCount).toBe(40);
    });

    it('an empty log: a header and the first metadata block only', async () => {
        const { log } = writeHrl([]);
        expect(log.length).toBe(8192);
        const index = await validateHrl(bufferSource(log));
        expect(index.entryCount).toBe(0);
        expect(index.dataBytes).toBe(0);
    });
});
