import { byteSum } from './checksum';
import {
    decodeHrlHeader,
    entryChecksum,
    H,
    HRL_COOKIE,
    HRL_ENTRY_SIZE,
    HRL_HEADER_SIZE,
    HRL_META_OPERATION_WRITE,
    HRL_METADATA_HEADER_SIZE,
    HRL_SECTOR,
    HRL_VERSION_1,
    HRL_VERSION_2,
    HrlHeader,
    ME,
    metadataCapacity,
    metadataHeaderChecksum,
    MH,
    readU64,
} from './format';
import { hex32, HrlError } from './hrlError';
import { ByteSource } from './source';

export { HrlError } from './hrlError';

export type { HrlHeader } from './format';

/** One write recorded in the log. */
export interface HrlEntry {
    /** Position in log order, from 0. */
    index: number;
    diskOffset: number;
    length: number;
    /** Seconds since 2000-01-01 (raw TimeStamp). */
    timestamp: number;
    /** 0 = the writer recorded no data checksum for this entry. */
    dataChecksum: number;
    /** where this entry's data sits in the log file */
    logOffset: number;
}

/** A validated log's entries in log order, in typed arrays (about 28 bytes an entry). */
export interface HrlIndex {
    header: HrlHeader;
    entryCount: number;
    dataBytes: number;
    metadataBlockCount: number;
    hasDataChecksums: boolean;
    entry(i: number): HrlEntry;
    entries(): IterableIterator<HrlEntry>;
}

/** Largest MetadataSize this reader accepts: a block is read in one piece, so this bounds memory. */
export const HRL_MAX_METADATA_SIZE = 16 * 1024 * 1024;
/** Default size of the sequential reads of the data region. */
export const HRL_DEFAULT_READ_SIZE = 8 * 1024 * 1024;

/** An entry whose data sum of all-zero bytes proves it is all zeros (needs the data verified, and < 16 MiB). */
export function entryDataIsZero(entry: HrlEntry): boolean {
    // ~0 = 0xffffffff; a non-zero byte sum can wrap to 0 only after 2^32 / 255 bytes.
    return entry.dataChecksum === 0xffffffff && entry.length < Math.ceil(2 ** 32 / 255);
}

function fail(code: ConstructorParameters<typeof HrlError>[0], message: string, offset: number, value: unknown): never {
    throw new HrlError(code, message, offset, value);
}

function checkHeader(buf: Buffer, sourceSize: number): HrlHeader {
    const cookie = buf.toString('latin1', 0, 7);
    const pad = buf[7]!;
    if (cookie !== HRL_COOKIE || (pad !== 0x00 && pad !== 0x20)) {
        fail(
            'HRL_BAD_COOKIE',
            `not an MS-HRL log: cookie at offset 0 is 0x${buf.toString('hex', 0, 8)}, expected "msctlog" + 0x00 or 0x20`,
            0,
            buf.toString('hex', 0, 8),
        );
    }
    const f = decodeHrlHeader(buf);
    if (f.version === HRL_VERSION_1) {
        fail(
            'HRL_UNSUPPORTED_VERSION',
            `MS-HRL v1 log (LogFormatVersion ${hex32(f.version)} at offset 8): v1 is Hyper-V's local-only format, only v2 is replicated`,
            H.version,
            f.version,
        );
    }
    if (f.version !== HRL_VERSION_2) {
        fail(
            'HRL_UNSUPPORTED_VERSION',
            `unsupported LogFormatVersion ${hex32(f.version)} at offset 8, expected ${hex32(HRL_VERSION_2)}`,
            H.version,
            f.version,
        );
    }
    const computed =
        ~(byteSum(buf.subarray(0, HRL_HEADER_SIZE)) - byteSum(buf.subarray(H.checksum, H.checksum + 4))) >>> 0;
    if (computed !== f.checksum) {
        fail(
            'HRL_HEADER_CHECKSUM',
            `header checksum at offset 40 is ${hex32(f.checksum)} (${f.checksum}) but the header bytes give ${hex32(computed)} (${computed}): ~(byte sum of 4096 bytes, checksum field excluded)`,
            H.checksum,
            { stored: f.checksum, computed },
        );
    }
    if (f.eolLocation === 0) {
        fail(
            'HRL_NOT_CLOSED',
            'EOLLocation at offset 44 is 0: the log was not closed cleanly (host crash), the disk needs resynchronization',
            H.eolLocation,
            0,
        );
    }
    if (f.fileType !== 0)
        fail('HRL_HEADER_FIELD', `FileType at offset 104 is ${f.fileType}, expected 0`, H.fileType, f.fileType);
    if (f.flags !== 0)
        fail('HRL_HEADER_FIELD', `Flags at offset 108 is ${hex32(f.flags)}, expected 0`, H.flags, f.flags);
    for (let i = H.reserved; i < HRL_HEADER_SIZE; i++) {
        if (buf[i] !== 0)
            fail('HRL_HEADER_FIELD', `reserved header byte at offset ${i} is ${buf[i]}, expected 0`, i, buf[i]);
    }
    const m = f.metadataSize;
    if (m < HRL_SECTOR || m % HRL_SECTOR !== 0 || m > HRL_MAX_METADATA_SIZE) {
        fail(
            'HRL_HEADER_FIELD',
            `MetadataSize at offset 56 is ${m}, expected a multiple of 512 from 512 to ${HRL_MAX_METADATA_SIZE}`,
            H.metadataSize,
            m,
        );
    }
    if (f.eolLocation > sourceSize) {
        fail(
            'HRL_TRUNCATED',
            `EOLLocation at offset 44 is ${f.eolLocation} but the log has only ${sourceSize} bytes: truncated upload?`,
            H.eolLocation,
            f.eolLocation,
        );
    }
    if (f.eolLocation < HRL_HEADER_SIZE + m) {
        fail(
            'HRL_METADATA_LOCATION',
            `EOLLocation at offset 44 is ${f.eolLocation}, leaving no room for one ${m}-byte metadata block after the header`,
            H.eolLocation,
            f.eolLocation,
        );
    }
    const maxEntries = Math.floor((f.eolLocation - HRL_HEADER_SIZE) / m) * metadataCapacity(m);
    if (f.totalMetadataEntries > maxEntries) {
        fail(
            'HRL_METADATA_COUNT',
            `TotalMetadataEntries at offset 96 is ${f.totalMetadataEntries}, more than the ${maxEntries} that ${f.eolLocation} bytes of log can describe`,
            H.totalMetadataEntries,
            f.totalMetadataEntries,
        );
    }
    return f;
}

/** Reads and validates the 4096-byte header (cookie, version, checksum, closed, fields, EOLLocation, counts). */
export async function readHrlHeader(source: ByteSource, options: { signal?: AbortSignal } = {}): Promise<HrlHeader> {
    if (source.size < HRL_HEADER_SIZE) {
        fail('HRL_TRUNCATED', `log is ${source.size} bytes, shorter than the 4096-byte header`, 0, source.size);
    }
    const buf = await source.read(0, HRL_HEADER_SIZE, options.signal);
    return checkHeader(buf, source.size);
}

class CompactHrlIndex implements HrlIndex {
    readonly metadataBlockCount: number;
    readonly hasDataChecksums: boolean;
    readonly dataBytes: number;

    constructor(
        readonly header: HrlHeader,
        private readonly diskOffsets: Float64Array,
        private readonly lengths: Uint32Array,
        private readonly timestamps: Uint32Array,
        private readonly dataChecksums: Uint32Array,
        private readonly logOffsets: Float64Array,
        blockCount: number,
    ) {
        this.metadataBlockCount = blockCount;
        this.hasDataChecksums = dataChecksums.some((c) => c !== 0);
        let bytes = 0;
        for (const l of lengths) bytes += l;
        this.dataBytes = bytes;
    }

    get entryCount(): number {
        return this.lengths.length;
    }

    entry(i: number): HrlEntry {
        if (!Number.isInteger(i) || i < 0 || i >= this.lengths.length) {
            throw new RangeError(`entry ${i} is outside 0..${this.lengths.length - 1}`);
        }
        return {
            index: i,
            diskOffset: this.diskOffsets[i]!,
            length: this.lengths[i]!,
            timestamp: this.timestamps[i]!,
            dataChecksum: this.dataChecksums[i]!,
            logOffset: this.logOffsets[i]!,
        };
    }

    *entries(): IterableIterator<HrlEntry> {
        for (let i = 0; i < this.lengths.length; i++) yield this.entry(i);
    }
}

/** A metadata block found while walking backwards: where it is, where its data starts, its valid entries. */
interface WalkedBlock {
    location: number;
    dataStart: number;
    entryBytes: Buffer;
}

/**
 * Reads the header and walks the metadata blocks backwards from EOLLocation (spec 2.5), validating every
 * header, block and entry and the data layout, but not reading the data. Memory is proportional to the number of
 * entries, never to the log size. `diskSize` (when given) rejects any entry that reaches past the disk.
 */
export async function readHrlIndex(
    source: ByteSource,
    options: { diskSize?: number; signal?: AbortSignal } = {},
): Promise<HrlIndex> {
    const { diskSize, signal } = options;
    const header = await readHrlHeader(source, { signal });
    const m = header.metadataSize;
    const capacity = metadataCapacity(m);
    const total = header.totalMetadataEntries;
    const diskLimit = diskSize ?? Number.MAX_SAFE_INTEGER;
    const blocks: WalkedBlock[] = [];
    let seen = 0;
    let location = header.eolLocation - m;
    for (;;) {
        signal?.throwIfAborted();
        const block = await source.read(location, m, signal);
        const storedSum = block.readUInt32LE(MH.checksum);
        const computedSum = metadataHeaderChecksum(block);
        if (storedSum !== computedSum) {
            fail(
                'HRL_METADATA_CHECKSUM',
                `metadata block at offset ${location}: checksum ${hex32(storedSum)} stored, ${hex32(computedSum)} computed`,
                location + MH.checksum,
                { stored: storedSum, computed: computedSum },
            );
        }
        for (let i = MH.reserved; i < HRL_METADATA_HEADER_SIZE; i++) {
            if (block[i] !== 0) {
                fail(
                    'HRL_HEADER_FIELD',
                    `metadata block at offset ${location}: reserved byte ${i} is ${block[i]}, expected 0`,
                    location + i,
                    block[i],
                );
            }
        }
        const valid = block.readUInt32LE(MH.validEntries);
        if (valid > capacity) {
            fail(
                'HRL_METADATA_COUNT',
                `metadata block at offset ${location}: ValidMetadataEntries ${valid} exceeds the block's capacity of ${capacity}`,
                location + MH.validEntries,
                valid,
            );
        }
        seen += valid;
        if (seen > total) {
            fail(
                'HRL_METADATA_COUNT',
                `metadata blocks hold more entries (${seen} so far) than TotalMetadataEntries ${total} at offset 96`,
                location + MH.validEntries,
                seen,
            );
        }
        const distance = readU64(block, MH.previousLocation);
        const previous = location - distance;
        if (distance !== 0 && (previous < HRL_HEADER_SIZE || previous + m > location)) {
            fail(
                'HRL_METADATA_LOCATION',
                `metadata block at offset ${location}: PreviousMetadataLocation ${distance} points to ${previous}, which is not a whole block before it and after the header`,
                location + MH.previousLocation,
                distance,
            );
        }
        const dataStart = distance === 0 ? HRL_HEADER_SIZE : previous + m;
        let dataLength = 0;
        for (let i = 0; i < valid; i++) {
            const at = HRL_METADATA_HEADER_SIZE + i * HRL_ENTRY_SIZE;
            const fileAt = location + at;
            const stored = block.readUInt32LE(at + ME.checksum);
            const computed = entryChecksum(block, at);
            if (stored !== computed) {
                fail(
                    'HRL_ENTRY_CHECKSUM',
                    `metadata entry at offset ${fileAt}: checksum ${hex32(stored)} stored, ${hex32(computed)} computed`,
                    fileAt + ME.checksum,
                    { stored, computed },
                );
            }
            const op = block[at + ME.metaOperation]!;
            if (op !== HRL_META_OPERATION_WRITE) {
                fail(
                    'HRL_ENTRY_FIELD',
                    `metadata entry at offset ${fileAt}: MetaOperation is ${op}, only 1 (write) is defined`,
                    fileAt + ME.metaOperation,
                    op,
                );
            }
            for (let j = ME.location; j < HRL_ENTRY_SIZE; j++) {
                if (block[at + j] !== 0) {
                    fail(
                        'HRL_ENTRY_FIELD',
                        `metadata entry at offset ${fileAt}: ${j === ME.location ? 'Location' : 'reserved byte'} at ${fileAt + j} is ${block[at + j]}, expected 0`,
                        fileAt + j,
                        block[at + j],
                    );
                }
            }
            const diskOffset = readU64(block, at + ME.byteOffset);
            const length = block.readUInt32LE(at + ME.dataLength);
            if (diskOffset % HRL_SECTOR !== 0 || diskOffset > Number.MAX_SAFE_INTEGER - length) {
                fail(
                    'HRL_ENTRY_FIELD',
                    `metadata entry at offset ${fileAt}: ByteOffset ${block.readBigUInt64LE(at + ME.byteOffset)} is not a multiple of 512 below 2^53`,
                    fileAt + ME.byteOffset,
                    block.readBigUInt64LE(at + ME.byteOffset),
                );
            }
            if (length % HRL_SECTOR !== 0) {
                fail(
                    'HRL_ENTRY_FIELD',
                    `metadata entry at offset ${fileAt}: DataLength ${length} is not a multiple of 512`,
                    fileAt + ME.dataLength,
                    length,
                );
            }
            if (diskOffset + length > diskLimit) {
                fail(
                    'HRL_ENTRY_OUT_OF_DISK',
                    `metadata entry at offset ${fileAt}: writes ${length} bytes at disk offset ${diskOffset}, past the end of the ${diskLimit}-byte disk`,
                    fileAt + ME.byteOffset,
                    diskOffset,
                );
            }
            dataLength += length;
        }
        if (dataStart + dataLength !== location) {
            fail(
                'HRL_DATA_LAYOUT',
                `metadata block at offset ${location}: its ${valid} entries hold ${dataLength} bytes of data, but the data region before it runs from ${dataStart} (${location - dataStart} bytes)`,
                location,
                { dataStart, dataLength, regionLength: location - dataStart },
            );
        }
        blocks.push({
            location,
            dataStart,
            entryBytes: Buffer.from(
                block.subarray(HRL_METADATA_HEADER_SIZE, HRL_METADATA_HEADER_SIZE + valid * HRL_ENTRY_SIZE),
            ),
        });
        if (distance === 0) break;
        location = previous;
    }
    if (seen !== total) {
        fail(
            'HRL_METADATA_COUNT',
            `TotalMetadataEntries at offset 96 is ${total} but the metadata blocks hold ${seen} entries`,
            H.totalMetadataEntries,
            total,
        );
    }
    const diskOffsets = new Float64Array(total);
    const lengths = new Uint32Array(total);
    const timestamps = new Uint32Array(total);
    const dataChecksums = new Uint32Array(total);
    const logOffsets = new Float64Array(total);
    let n = 0;
    for (let b = blocks.length - 1; b >= 0; b--) {
        const { entryBytes, dataStart } = blocks[b]!;
        let logOffset = dataStart;
        for (let at = 0; at < entryBytes.length; at += HRL_ENTRY_SIZE, n++) {
            const length = entryBytes.readUInt32LE(at + ME.dataLength);
            diskOffsets[n] = readU64(entryBytes, at + ME.byteOffset);
            lengths[n] = length;
            timestamps[n] = entryBytes.readUInt32LE(at + ME.timestamp);
            dataChecksums[n] = entryBytes.readUInt32LE(at + ME.dataChecksum);
            logOffsets[n] = logOffset;
            logOffset += length;
        }
    }
    return new CompactHrlIndex(header, diskOffsets, lengths, timestamps, dataChecksums, logOffsets, blocks.length);
}

/** A stretch of the log read in one call. */
interface ReadWindow {
    start: number;
    end: number;
}

/**
 * Plans sequential reads of at most `readSize` bytes that cover the data of the entries `wanted` selects, in
 * log order. Gaps inside a window (metadata blocks) are read and ignored; windows never start in a gap.
 */
function* planWindows(index: HrlIndex, readSize: number, wanted: (e: HrlEntry) => boolean): Generator<ReadWindow> {
    let lastNeeded = 0;
    for (let i = index.entryCount - 1; i >= 0; i--) {
        const e = index.entry(i);
        if (e.length > 0 && wanted(e)) {
            lastNeeded = e.logOffset + e.length;
            break;
        }
    }
    let covered = 0;
    for (const e of index.entries()) {
        if (e.length === 0 || !wanted(e)) continue;
        const end = e.logOffset + e.length;
        while (covered < end) {
            const start = Math.max(covered, e.logOffset);
            covered = Math.min(start + readSize, lastNeeded);
            yield { start, end: covered };
        }
    }
}

/** Reads planned windows with one read in flight ahead of the consumer, so I/O overlaps the checksum work. */
async function* readWindows(
    source: ByteSource,
    windows: Generator<ReadWindow>,
    signal: AbortSignal | undefined,
): AsyncGenerator<{ window: ReadWindow; bytes: Buffer }> {
    const begin = (): { window: ReadWindow; bytes: Promise<Buffer> } | undefined => {
        const next = windows.next();
        if (next.done) return undefined;
        const window = next.value;
        const read = async (): Promise<Buffer> => source.read(window.start, window.end - window.start, signal);
        return { window, bytes: read() };
    };
    let current = begin();
    let ahead: typeof current;
    try {
        while (current) {
            signal?.throwIfAborted();
            ahead = begin();
            const bytes = await current.bytes;
            yield { window: current.window, bytes };
            current = ahead;
            ahead = undefined;
        }
    } finally {
        // A read started ahead but never awaited must not surface as an unhandled rejection.
        ahead?.bytes.catch(() => undefined);
    }
}

function normalizeReadSize(readSize: number | undefined): number {
    const size = readSize ?? HRL_DEFAULT_READ_SIZE;
    if (!Number.isSafeInteger(size) || size <= 0)
        throw new RangeError(`readSize must be a positive integer, got ${size}`);
    return Math.ceil(size / HRL_SECTOR) * HRL_SECTOR;
}

function dataChecksumError(e: HrlEntry, computed: number): HrlError {
    return new HrlError(
        'HRL_DATA_CHECKSUM',
        `entry ${e.index} (data at log offset ${e.logOffset}, ${e.length} bytes for disk offset ${e.diskOffset}): DataChecksum ${hex32(e.dataChecksum)} stored, ${hex32(computed)} computed`,
        e.logOffset,
        { stored: e.dataChecksum, computed, entry: e.index },
    );
}

/**
 * Verifies the data checksum of every entry that has one (DataChecksum 0 means none, as in the spec's example),
 * with large sequential reads and one read in flight ahead. Entries without a checksum are not read at all.
 */
export async function verifyHrlData(
    source: ByteSource,
    index: HrlIndex,
    options: { signal?: AbortSignal; readSize?: number } = {},
): Promise<void> {
    if (!index.hasDataChecksums) return;
    const readSize = normalizeReadSize(options.readSize);
    const checked = (e: HrlEntry): boolean => e.dataChecksum !== 0;
    let i = 0;
    let sum = 0;
    let done = 0; // bytes of entry i already summed
    const n = index.entryCount;
    for await (const { window, bytes } of readWindows(source, planWindows(index, readSize, checked), options.signal)) {
        while (i < n) {
            const e = index.entry(i);
            if (e.dataChecksum === 0 || e.length === 0) {
                if (e.length === 0 && e.dataChecksum !== 0 && e.dataChecksum !== 0xffffffff) {
                    throw dataChecksumError(e, 0xffffffff);
                }
                i++;
                continue;
            }
            const from = e.logOffset + done;
            if (from >= window.end) break;
            const to = Math.min(e.logOffset + e.length, window.end);
            sum = byteSum(bytes.subarray(from - window.start, to - window.start), sum);
            done += to - from;
            if (done < e.length) break;
            const computed = ~sum >>> 0;
            if (computed !== e.dataChecksum) throw dataChecksumError(e, computed);
            i++;
            sum = 0;
            done = 0;
        }
    }
}

/** One piece of an entry's data: `data` goes to disk offset `diskOffset` = `entry.diskOffset + entryOffset`. */
export interface HrlDataPiece {
    entry: HrlEntry;
    /** Byte offset of `data` within the entry's data (0 unless the entry spans reads). */
    entryOffset: number;
    diskOffset: number;
    data: Buffer;
}

/**
 * Streams the entries' data in log order with large ranged reads and bounded memory (two reads of `readSize`).
 * An entry that fits inside one read comes as one piece; an entry that crosses reads comes as several pieces,
 * in order, each a whole number of 512-byte sectors. Entries with DataLength 0 yield nothing.
 * `data` is a view of the read buffer; it stays valid after the next iteration (each read gets its own buffer,
 * except with bufferSource, where it is a view of the log itself).
 * With `verify`, data checksums are checked as the data streams: the error is thrown before any piece of the read
 * in which the failing entry ends, so an entry that fits in one read is never yielded unverified, but the first
 * pieces of an entry longer than `readSize` may be. To apply nothing from a bad log, call `validateHrl` first.
 */
export async function* readHrlData(
    source: ByteSource,
    index: HrlIndex,
    options: { signal?: AbortSignal; readSize?: number; verify?: boolean } = {},
): AsyncGenerator<HrlDataPiece> {
    const readSize = normalizeReadSize(options.readSize);
    const verify = options.verify ?? false;
    const n = index.entryCount;
    let i = 0;
    let done = 0;
    let sum = 0;
    for await (const { window, bytes } of readWindows(
        source,
        planWindows(index, readSize, () => true),
        options.signal,
    )) {
        const pieces: HrlDataPiece[] = [];
        while (i < n) {
            const e = index.entry(i);
            if (e.length === 0) {
                if (verify && e.dataChecksum !== 0 && e.dataChecksum !== 0xffffffff) {
                    throw dataChecksumError(e, 0xffffffff);
                }
                i++;
                continue;
            }
            const from = e.logOffset + done;
            if (from >= window.end) break;
            const to = Math.min(e.logOffset + e.length, window.end);
            const data = bytes.subarray(from - window.start, to - window.start);
            pieces.push({ entry: e, entryOffset: done, diskOffset: e.diskOffset + done, data });
            if (verify && e.dataChecksum !== 0) sum = byteSum(data, sum);
            done += to - from;
            if (done < e.length) break;
            if (verify && e.dataChecksum !== 0) {
                const computed = ~sum >>> 0;
                if (computed !== e.dataChecksum) throw dataChecksumError(e, computed);
            }
            i++;
            sum = 0;
            done = 0;
        }
        yield* pieces;
    }
}

/** Everything: header, metadata, layout, disk bounds and data checksums. Nothing should be applied before this. */
export async function validateHrl(
    source: ByteSource,
    options: { diskSize?: number; signal?: AbortSignal; readSize?: number } = {},
): Promise<HrlIndex> {
    const index = await readHrlIndex(source, options);
    await verifyHrlData(source, index, options);
    return index;
}
