import { randomUUID } from 'node:crypto';
import { HvrError } from '../errors';
import { guidFromBytes, guidToBytes } from '../hrl/guid';

/**
 * The 512-byte footer that makes raw disk bytes a fixed VHD (Microsoft VHD format specification; see
 * specs/vhd-fixed.md). Azure creates managed disks only from page blobs laid out this way: the virtual disk,
 * a whole number of MiB, then this footer. All integers big-endian.
 */
export const VHD_FOOTER_SIZE = 512;
export const MIB = 1024 * 1024;
/** A page blob holds at most 8 TiB, footer included. */
export const MAX_PAGE_BLOB_BYTES = 8 * 1024 * 1024 * MIB;
/** The largest virtual size whose replica blob (size + footer) fits in a page blob. */
export const MAX_VIRTUAL_SIZE = MAX_PAGE_BLOB_BYTES - MIB;

const COOKIE = 'conectix';
const FEATURES_RESERVED = 0x00000002;
const FORMAT_VERSION = 0x00010000;
const DISK_TYPE_FIXED = 2;
const HOST_OS_WINDOWS = 'Wi2k';
/**
 * Creator Application. Readers derive a fixed VHD's size either from Current Size or from the CHS geometry
 * (which rounds down), choosing by this field: "win " is Hyper-V's and tells them to use Current Size, as
 * Azure does. With an unknown value qemu-img, for one, reports the smaller CHS size.
 */
export const VHD_CREATOR_APPLICATION = 'win ';
const CREATOR_VERSION = 0x000a0000;
const EPOCH_MS = Date.UTC(2000, 0, 1);

const F = {
    cookie: 0,
    features: 8,
    formatVersion: 12,
    dataOffset: 16,
    timestamp: 24,
    creatorApplication: 28,
    creatorVersion: 32,
    creatorHostOs: 36,
    originalSize: 40,
    currentSize: 48,
    geometry: 56,
    diskType: 60,
    checksum: 64,
    uniqueId: 68,
    savedState: 84,
    reserved: 85,
} as const;

export interface ChsGeometry {
    cylinders: number;
    heads: number;
    sectorsPerTrack: number;
}

export interface VhdFooter {
    features: number;
    formatVersion: number;
    timestamp: Date;
    creatorApplication: string;
    creatorVersion: number;
    creatorHostOs: string;
    originalSize: number;
    currentSize: number;
    geometry: ChsGeometry;
    diskType: number;
    checksum: number;
    uniqueId: string;
    savedState: number;
}

/** `n` rounded up to a whole MiB (Azure's rule for a VHD's virtual size). */
export function roundUpToMiB(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a byte count: ${n}`);
    return Math.ceil(n / MIB) * MIB;
}

/** The page blob size for a replica of a disk of `virtualSize` bytes: the size rounded up to a MiB, plus the footer. */
export function replicaBlobSize(virtualSize: number): number {
    const size = roundUpToMiB(virtualSize) + VHD_FOOTER_SIZE;
    if (virtualSize <= 0 || size > MAX_PAGE_BLOB_BYTES) {
        throw new HvrError(
            'VHD_SIZE_INVALID',
            `a disk of ${virtualSize} bytes cannot be a replica: a fixed VHD in a page blob holds 1 MiB to ${MAX_VIRTUAL_SIZE} bytes`,
            { virtualSize },
        );
    }
    return size;
}

/** The CHS geometry the VHD specification derives from a disk size (its appendix algorithm, integer arithmetic). */
export function chsGeometry(virtualSize: number): ChsGeometry {
    let totalSectors = Math.floor(virtualSize / 512);
    if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255;
    let sectorsPerTrack: number;
    let heads: number;
    let cylinderTimesHeads: number;
    if (totalSectors >= 65535 * 16 * 63) {
        sectorsPerTrack = 255;
        heads = 16;
        cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    } else {
        sectorsPerTrack = 17;
        cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
        heads = Math.floor((cylinderTimesHeads + 1023) / 1024);
        if (heads < 4) heads = 4;
        if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
            sectorsPerTrack = 31;
            heads = 16;
            cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
        }
        if (cylinderTimesHeads >= heads * 1024) {
            sectorsPerTrack = 63;
            heads = 16;
            cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
        }
    }
    return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

function checksumOf(footer: Buffer): number {
    let sum = 0;
    for (let i = 0; i < VHD_FOOTER_SIZE; i++) {
        if (i < F.checksum || i >= F.checksum + 4) sum += footer[i]!;
    }
    return ~sum >>> 0;
}

function checkVirtualSize(virtualSize: number): void {
    if (
        !Number.isSafeInteger(virtualSize) ||
        virtualSize <= 0 ||
        virtualSize % MIB !== 0 ||
        virtualSize > MAX_VIRTUAL_SIZE
    ) {
        throw new HvrError(
            'VHD_SIZE_INVALID',
            `virtual size ${virtualSize} is not a whole number of MiB from 1 MiB to ${MAX_VIRTUAL_SIZE} bytes (round it up with roundUpToMiB)`,
            { virtualSize },
        );
    }
}

/** The footer of a fixed VHD of `virtualSize` bytes (a whole number of MiB). */
export function encodeVhdFooter(options: { virtualSize: number; uniqueId?: string; timestamp?: Date }): Buffer {
    const { virtualSize } = options;
    checkVirtualSize(virtualSize);
    const seconds = Math.floor(((options.timestamp ?? new Date()).getTime() - EPOCH_MS) / 1000);
    if (!(seconds >= 0 && seconds <= 0xffffffff)) throw new RangeError('VHD timestamp must be between 2000 and 2136');
    const b = Buffer.alloc(VHD_FOOTER_SIZE);
    b.write(COOKIE, F.cookie, 'ascii');
    b.writeUInt32BE(FEATURES_RESERVED, F.features);
    b.writeUInt32BE(FORMAT_VERSION, F.formatVersion);
    b.writeBigUInt64BE(0xffffffffffffffffn, F.dataOffset);
    b.writeUInt32BE(seconds, F.timestamp);
    b.write(VHD_CREATOR_APPLICATION, F.creatorApplication, 'ascii');
    b.writeUInt32BE(CREATOR_VERSION, F.creatorVersion);
    b.write(HOST_OS_WINDOWS, F.creatorHostOs, 'ascii');
    b.writeBigUInt64BE(BigInt(virtualSize), F.originalSize);
    b.writeBigUInt64BE(BigInt(virtualSize), F.currentSize);
    const g = chsGeometry(virtualSize);
    b.writeUInt16BE(g.cylinders, F.geometry);
    b.writeUInt8(g.heads, F.geometry + 2);
    b.writeUInt8(g.sectorsPerTrack, F.geometry + 3);
    b.writeUInt32BE(DISK_TYPE_FIXED, F.diskType);
    guidToBytes(options.uniqueId ?? randomUUID(), b, F.uniqueId);
    b.writeUInt32BE(checksumOf(b), F.checksum);
    return b;
}

function invalid(message: string, offset: number, value: unknown): never {
    throw new HvrError('VHD_FOOTER_INVALID', `VHD footer: ${message}`, {
        offset,
        value: typeof value === 'bigint' ? value.toString() : value,
    });
}

/**
 * Decodes and validates a fixed-VHD footer as a replica must have it: cookie, checksum, version, fixed type,
 * a Current Size of whole MiB that fits a page blob, and the CHS geometry the spec's algorithm gives for it.
 */
export function decodeVhdFooter(buf: Buffer): VhdFooter {
    if (buf.length !== VHD_FOOTER_SIZE) invalid(`expected 512 bytes, got ${buf.length}`, 0, buf.length);
    const cookie = buf.toString('latin1', 0, 8);
    if (cookie !== COOKIE) invalid(`cookie at offset 0 is "${cookie}", expected "conectix"`, 0, cookie);
    const stored = buf.readUInt32BE(F.checksum);
    const computed = checksumOf(buf);
    if (stored !== computed)
        invalid(`checksum at offset 64 is ${stored}, the footer bytes give ${computed}`, F.checksum, stored);
    const formatVersion = buf.readUInt32BE(F.formatVersion);
    if (formatVersion !== FORMAT_VERSION)
        invalid(
            `format version at offset 12 is 0x${formatVersion.toString(16)}, expected 0x10000`,
            F.formatVersion,
            formatVersion,
        );
    const features = buf.readUInt32BE(F.features);
    if ((features & FEATURES_RESERVED) === 0)
        invalid(
            `features at offset 8 is 0x${features.toString(16)}, the reserved bit 0x2 must be set`,
            F.features,
            features,
        );
    const dataOffset = buf.readBigUInt64BE(F.dataOffset);
    if (dataOffset !== 0xffffffffffffffffn)
        invalid(
            `data offset at offset 16 is ${dataOffset}, a fixed disk has 0xFFFFFFFFFFFFFFFF`,
            F.dataOffset,
            dataOffset,
        );
    const diskType = buf.readUInt32BE(F.diskType);
    if (diskType !== DISK_TYPE_FIXED)
        invalid(`disk type at offset 60 is ${diskType}, expected 2 (fixed)`, F.diskType, diskType);
    const currentBig = buf.readBigUInt64BE(F.currentSize);
    const currentSize = Number(currentBig);
    if (currentBig > BigInt(MAX_VIRTUAL_SIZE) || currentSize === 0 || currentSize % MIB !== 0) {
        invalid(
            `current size at offset 48 is ${currentBig}, expected a whole number of MiB up to ${MAX_VIRTUAL_SIZE}`,
            F.currentSize,
            currentBig,
        );
    }
    const geometry: ChsGeometry = {
        cylinders: buf.readUInt16BE(F.geometry),
        heads: buf[F.geometry + 2]!,
        sectorsPerTrack: buf[F.geometry + 3]!,
    };
    const expected = chsGeometry(currentSize);
    if (
        geometry.cylinders !== expected.cylinders ||
        geometry.heads !== expected.heads ||
        geometry.sectorsPerTrack !== expected.sectorsPerTrack
    ) {
        invalid(
            `geometry at offset 56 is C/H/S ${geometry.cylinders}/${geometry.heads}/${geometry.sectorsPerTrack}, the VHD algorithm gives ${expected.cylinders}/${expected.heads}/${expected.sectorsPerTrack} for ${currentSize} bytes`,
            F.geometry,
            geometry,
        );
    }
    const seconds = buf.readUInt32BE(F.timestamp);
    return {
        features,
        formatVersion,
        timestamp: new Date(EPOCH_MS + seconds * 1000),
        creatorApplication: buf.toString('latin1', F.creatorApplication, F.creatorApplication + 4),
        creatorVersion: buf.readUInt32BE(F.creatorVersion),
        creatorHostOs: buf.toString('latin1', F.creatorHostOs, F.creatorHostOs + 4),
        originalSize: Number(buf.readBigUInt64BE(F.originalSize)),
        currentSize,
        geometry,
        diskType,
        checksum: stored,
        uniqueId: guidFromBytes(buf, F.uniqueId),
        savedState: buf[F.savedState]!,
    };
}
