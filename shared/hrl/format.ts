import { byteSum, checksumExcluding } from './checksum';
import { guidFromBytes, guidToBytes } from './guid';

/** MS-HRL v2 layout constants (spec 2.2–2.4). All integers little-endian. */
export const HRL_HEADER_SIZE = 4096;
export const HRL_SECTOR = 512;
export const HRL_METADATA_HEADER_SIZE = 32;
export const HRL_ENTRY_SIZE = 32;
export const HRL_DEFAULT_METADATA_SIZE = 4096;
export const HRL_VERSION_1 = 0x00010000;
export const HRL_VERSION_2 = 0x00020000;
export const HRL_COOKIE = 'msctlog';
export const HRL_META_OPERATION_WRITE = 1;
/** The largest DataLength a 32-bit field can hold that is still a whole number of sectors. */
export const HRL_MAX_ENTRY_LENGTH = 0xfffffe00;

/** Header field offsets. */
export const H = {
    cookie: 0,
    version: 8,
    timestamp: 12,
    creatorApplication: 16,
    creatorVersion: 20,
    originalSize: 24,
    currentSize: 32,
    checksum: 40,
    eolLocation: 44,
    errorCode: 52,
    metadataSize: 56,
    uniqueId: 60,
    previousUniqueId: 76,
    lastModified: 92,
    totalMetadataEntries: 96,
    fileType: 104,
    flags: 108,
    vhd2DataWriteGuid: 110,
    reserved: 126,
} as const;

/** Metadata block header field offsets. */
export const MH = { previousLocation: 0, validEntries: 8, checksum: 12, reserved: 16 } as const;

/** Metadata entry field offsets. */
export const ME = {
    byteOffset: 0,
    checksum: 8,
    dataLength: 12,
    timestamp: 16,
    metaOperation: 20,
    dataChecksum: 21,
    location: 25,
    reserved: 26,
} as const;

const EPOCH_MS = Date.UTC(2000, 0, 1);

/** MS-HRL times are seconds since 2000-01-01T00:00:00Z in a uint32. */
export function hrlTimeToDate(seconds: number): Date {
    return new Date(EPOCH_MS + seconds * 1000);
}

export function dateToHrlTime(date: Date): number {
    const seconds = Math.floor((date.getTime() - EPOCH_MS) / 1000);
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > 0xffffffff) {
        throw new RangeError(`time ${date.toISOString()} cannot be stored as seconds since 2000 in 32 bits`);
    }
    return seconds;
}

/** Entries per metadata block: the block minus its 32-byte header, in 32-byte entries. */
export function metadataCapacity(metadataSize: number): number {
    return Math.floor((metadataSize - HRL_METADATA_HEADER_SIZE) / HRL_ENTRY_SIZE);
}

/**
 * A uint64 field as a number. Values past 2^53 cannot be exact; they come back as at least 2^53, which every
 * bound check then rejects, so precision is never silently lost on a value that is used.
 */
export function readU64(buf: Buffer, offset: number): number {
    const big = buf.readBigUInt64LE(offset);
    return big > BigInt(Number.MAX_SAFE_INTEGER) ? Math.max(Number(big), 2 ** 53) : Number(big);
}

export function headerChecksum(header: Buffer): number {
    return checksumExcluding(header.subarray(0, HRL_HEADER_SIZE), H.checksum);
}

export function metadataHeaderChecksum(block: Buffer, at = 0): number {
    return checksumExcluding(block.subarray(at, at + HRL_METADATA_HEADER_SIZE), MH.checksum);
}

export function entryChecksum(block: Buffer, at: number): number {
    return checksumExcluding(block.subarray(at, at + HRL_ENTRY_SIZE), ME.checksum);
}

/** The `DataChecksum` of an entry's data: `~(byte sum)`. */
export function dataChecksumOf(data: Uint8Array): number {
    return ~byteSum(data) >>> 0;
}

/** The fields a writer chooses; the checksum is computed. */
export interface HrlHeaderFields {
    version: number;
    createdAt: number;
    creatorApplication: string;
    creatorVersion: number;
    originalSize: number;
    currentSize: number;
    eolLocation: number;
    errorCode: number;
    metadataSize: number;
    uniqueId: string;
    previousUniqueId: string;
    lastModifiedAt: number;
    totalMetadataEntries: number;
    fileType: number;
    flags: number;
    vhd2DataWriteGuid: string;
}

/** The 4096-byte header with its checksum filled in. */
export function encodeHrlHeader(f: HrlHeaderFields): Buffer {
    const b = Buffer.alloc(HRL_HEADER_SIZE);
    b.write(HRL_COOKIE, H.cookie, 'ascii');
    b.writeUInt32LE(f.version, H.version);
    b.writeUInt32LE(f.createdAt, H.timestamp);
    b.write(f.creatorApplication.slice(0, 4), H.creatorApplication, 'ascii');
    b.writeUInt32LE(f.creatorVersion, H.creatorVersion);
    b.writeBigUInt64LE(BigInt(f.originalSize), H.originalSize);
    b.writeBigUInt64LE(BigInt(f.currentSize), H.currentSize);
    b.writeBigUInt64LE(BigInt(f.eolLocation), H.eolLocation);
    b.writeInt32LE(f.errorCode, H.errorCode);
    b.writeUInt32LE(f.metadataSize, H.metadataSize);
    guidToBytes(f.uniqueId, b, H.uniqueId);
    guidToBytes(f.previousUniqueId, b, H.previousUniqueId);
    b.writeUInt32LE(f.lastModifiedAt, H.lastModified);
    b.writeBigUInt64LE(BigInt(f.totalMetadataEntries), H.totalMetadataEntries);
    b.writeUInt32LE(f.fileType, H.fileType);
    b.writeUInt16LE(f.flags, H.flags);
    guidToBytes(f.vhd2DataWriteGuid, b, H.vhd2DataWriteGuid);
    b.writeUInt32LE(headerChecksum(b), H.checksum);
    return b;
}

/** Writes a metadata block header (with checksum) at `at` in `block`. */
export function encodeMetadataHeader(block: Buffer, at: number, previousLocation: number, validEntries: number): void {
    block.fill(0, at, at + HRL_METADATA_HEADER_SIZE);
    block.writeBigUInt64LE(BigInt(previousLocation), at + MH.previousLocation);
    block.writeUInt32LE(validEntries, at + MH.validEntries);
    block.writeUInt32LE(metadataHeaderChecksum(block, at), at + MH.checksum);
}

/** Writes one metadata entry (MetaOperation = write, with checksum) at `at` in `block`. */
export function encodeMetadataEntry(
    block: Buffer,
    at: number,
    e: { diskOffset: number; length: number; timestamp: number; dataChecksum: number },
): void {
    block.fill(0, at, at + HRL_ENTRY_SIZE);
    block.writeBigUInt64LE(BigInt(e.diskOffset), at + ME.byteOffset);
    block.writeUInt32LE(e.length, at + ME.dataLength);
    block.writeUInt32LE(e.timestamp, at + ME.timestamp);
    block.writeUInt8(HRL_META_OPERATION_WRITE, at + ME.metaOperation);
    block.writeUInt32LE(e.dataChecksum, at + ME.dataChecksum);
    block.writeUInt32LE(entryChecksum(block, at), at + ME.checksum);
}

/** Reads the header's fields without judging them (the reader validates). */
export function decodeHeaderFields(b: Buffer): HrlHeaderFields & { checksum: number } {
    return {
        version: b.readUInt32LE(H.version),
        createdAt: b.readUInt32LE(H.timestamp),
        creatorApplication: b.toString('latin1', H.creatorApplication, H.creatorApplication + 4).replace(/[\0 ]+$/, ''),
        creatorVersion: b.readUInt32LE(H.creatorVersion),
        originalSize: readU64(b, H.originalSize),
        currentSize: readU64(b, H.currentSize),
        checksum: b.readUInt32LE(H.checksum),
        eolLocation: readU64(b, H.eolLocation),
        errorCode: b.readInt32LE(H.errorCode),
        metadataSize: b.readUInt32LE(H.metadataSize),
        uniqueId: guidFromBytes(b, H.uniqueId),
        previousUniqueId: guidFromBytes(b, H.previousUniqueId),
        lastModifiedAt: b.readUInt32LE(H.lastModified),
        totalMetadataEntries: readU64(b, H.totalMetadataEntries),
        fileType: b.readUInt32LE(H.fileType),
        flags: b.readUInt16LE(H.flags),
        vhd2DataWriteGuid: guidFromBytes(b, H.vhd2DataWriteGuid),
    };
}

/** The log header (spec 2.2), decoded. Times are Dates; GUIDs lowercase strings. */
export interface HrlHeader {
    version: number;
    createdAt: Date;
    creatorApplication: string;
    originalSize: number;
    currentSize: number;
    checksum: number;
    eolLocation: number;
    errorCode: number;
    metadataSize: number;
    uniqueId: string;
    previousUniqueId: string;
    lastModifiedAt: Date;
    totalMetadataEntries: number;
    fileType: number;
    flags: number;
    vhd2DataWriteGuid: string;
    /** CreatorVersion: informational, not verified. */
    creatorVersion: number;
}

/** Decodes a header without validating it (see `readHrlHeader` for that). */
export function decodeHrlHeader(buf: Buffer): HrlHeader {
    const f = decodeHeaderFields(buf);
    return { ...f, createdAt: hrlTimeToDate(f.createdAt), lastModifiedAt: hrlTimeToDate(f.lastModifiedAt) };
}
