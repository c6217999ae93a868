import { open, FileHandle } from 'node:fs/promises';
import { byteSum } from './checksum';
import {
    dateToHrlTime,
    encodeHrlHeader,
    encodeMetadataEntry,
    encodeMetadataHeader,
    HRL_DEFAULT_METADATA_SIZE,
    HRL_ENTRY_SIZE,
    HRL_HEADER_SIZE,
    HRL_MAX_ENTRY_LENGTH,
    HRL_METADATA_HEADER_SIZE,
    HRL_SECTOR,
    HRL_VERSION_2,
    decodeHrlHeader,
    HrlHeader,
    metadataCapacity,
} from './format';
import { guidToBytes, newGuid, NIL_GUID } from './guid';

/** One write to record: `data.length` bytes at `diskOffset`, both multiples of 512. */
export interface HrlWriteEntry {
    diskOffset: number;
    data: Buffer;
    /** Seconds since 2000-01-01; defaults to the log's creation time. */
    timestamp?: number;
}

export interface HrlWriteOptions {
    /** This log's GUID; a fresh one by default. */
    uniqueId?: string;
    /** The previous log of the same disk; the nil GUID by default (first log). */
    previousUniqueId?: string;
    /** The VHDX's data-write GUID; the nil GUID by default. */
    vhd2DataWriteGuid?: string;
    createdAt?: Date;
    /** LastModifiedTimeStamp; `createdAt` by default. */
    lastModifiedAt?: Date;
    /** Multiple of 512, at least 512; 4096 by default. */
    metadataSize?: number;
    /** Record `~(byte sum)` of each entry's data; on by default. Off writes 0 ("no checksum"). */
    dataChecksums?: boolean;
    /** `false` writes EOLLocation = 0: a log its host never closed (for testing resynchronization). */
    closed?: boolean;
}

/** A span of the log to write: the layout is sequential except for the header, written last at offset 0. */
interface LogChunk {
    position: number;
    bytes: Buffer;
}

/**
 * The layout both writers share, in the shape of the spec's example: header, an empty first metadata block at
 * 4096 (PreviousMetadataLocation 0), then for each group of up to `capacity` entries their data followed by the
 * metadata block describing them.
 */
class HrlLayout {
    private readonly metadataSize: number;
    private readonly capacity: number;
    private readonly checksums: boolean;
    private readonly createdAt: number;
    private readonly lastModifiedAt: number;
    private readonly ids: { uniqueId: string; previousUniqueId: string; vhd2DataWriteGuid: string };
    private readonly closed: boolean;
    private block: Buffer;
    private blockEntries = 0;
    private lastBlockLocation = HRL_HEADER_SIZE;
    private position: number;
    private total = 0;

    constructor(options: HrlWriteOptions) {
        const m = options.metadataSize ?? HRL_DEFAULT_METADATA_SIZE;
        if (!Number.isInteger(m) || m < HRL_SECTOR || m % HRL_SECTOR !== 0 || m > 0xffffffff) {
            throw new RangeError(`metadataSize must be a multiple of 512 and at least 512, got ${m}`);
        }
        this.metadataSize = m;
        this.capacity = metadataCapacity(m);
        this.checksums = options.dataChecksums ?? true;
        this.closed = options.closed ?? true;
        const created = options.createdAt ?? new Date();
        this.createdAt = dateToHrlTime(created);
        this.lastModifiedAt = dateToHrlTime(options.lastModifiedAt ?? created);
        this.ids = {
            uniqueId: options.uniqueId ?? newGuid(),
            previousUniqueId: options.previousUniqueId ?? NIL_GUID,
            vhd2DataWriteGuid: options.vhd2DataWriteGuid ?? NIL_GUID,
        };
        for (const id of Object.values(this.ids)) guidToBytes(id); // reject a malformed GUID now, not at close
        this.block = Buffer.alloc(m);
        this.position = HRL_HEADER_SIZE + m;
    }

    /** The empty first metadata block. */
    start(): LogChunk {
        const anchor = Buffer.alloc(this.metadataSize);
        encodeMetadataHeader(anchor, 0, 0, 0);
        return { position: HRL_HEADER_SIZE, bytes: anchor };
    }

    add(diskOffset: number, data: Buffer, timestamp: number | undefined): LogChunk[] {
        if (!Number.isSafeInteger(diskOffset) || diskOffset < 0 || diskOffset % HRL_SECTOR !== 0) {
            throw new RangeError(`entry disk offset must be a non-negative multiple of 512, got ${diskOffset}`);
        }
        if (data.length % HRL_SECTOR !== 0 || data.length > HRL_MAX_ENTRY_LENGTH) {
            throw new RangeError(
                `entry data must be a multiple of 512 bytes up to ${HRL_MAX_ENTRY_LENGTH}, got ${data.length}`,
            );
        }
        if (!Number.isSafeInteger(diskOffset + data.length))
            throw new RangeError(`entry at ${diskOffset} ends past 2^53`);
        const ts = timestamp ?? this.createdAt;
        if (!Number.isInteger(ts) || ts < 0 || ts > 0xffffffff)
            throw new RangeError(`entry timestamp ${ts} is not a uint32`);
        const chunks: LogChunk[] = [];
        if (data.length > 0) chunks.push({ position: this.position, bytes: data });
        this.position += data.length;
        encodeMetadataEntry(this.block, HRL_METADATA_HEADER_SIZE + this.blockEntries * HRL_ENTRY_SIZE, {
            diskOffset,
            length: data.length,
            timestamp: ts,
            dataChecksum: this.checksums ? ~byteSum(data) >>> 0 : 0,
        });
        this.blockEntries++;
        this.total++;
        if (this.blockEntries === this.capacity) chunks.push(this.sealBlock());
        return chunks;
    }

    private sealBlock(): LogChunk {
        const location = this.position;
        encodeMetadataHeader(this.block, 0, location - this.lastBlockLocation, this.blockEntries);
        const chunk = { position: location, bytes: this.block };
        this.block = Buffer.alloc(this.metadataSize);
        this.blockEntries = 0;
        this.lastBlockLocation = location;
        this.position += this.metadataSize;
        return chunk;
    }

    /** The last partial block (if any) and the header. */
    finish(): { chunks: LogChunk[]; header: Buffer; size: number } {
        const chunks = this.blockEntries > 0 ? [this.sealBlock()] : [];
        const size = this.position;
        const header = encodeHrlHeader({
            version: HRL_VERSION_2,
            createdAt: this.createdAt,
            creatorApplication: 'ct',
            creatorVersion: 1,
            originalSize: size,
            currentSize: size,
            eolLocation: this.closed ? size : 0,
            errorCode: 0,
            metadataSize: this.metadataSize,
            ...this.ids,
            lastModifiedAt: this.lastModifiedAt,
            totalMetadataEntries: this.total,
            fileType: 0,
            flags: 0,
        });
        return { chunks, header, size };
    }
}

/** Writes a whole log in memory: for small logs (tests, the provider simulator). */
export function writeHrl(
    entries: Iterable<HrlWriteEntry>,
    options: HrlWriteOptions = {},
): { log: Buffer; header: HrlHeader } {
    const layout = new HrlLayout(options);
    const parts: Buffer[] = [Buffer.alloc(HRL_HEADER_SIZE), layout.start().bytes];
    for (const e of entries) {
        for (const chunk of layout.add(e.diskOffset, e.data, e.timestamp)) parts.push(chunk.bytes);
    }
    const { chunks, header, size } = layout.finish();
    for (const chunk of chunks) parts.push(chunk.bytes);
    parts[0] = header;
    const log = Buffer.concat(parts, size);
    return { log, header: decodeHrlHeader(header) };
}

/** Sequential writes are gathered up to this size before each write call. */
const FILE_BATCH_BYTES = 8 * 1024 * 1024;

/**
 * Writes a log to a file as entries arrive, holding at most one batch of data and one metadata block in memory:
 * for logs too large for memory (the merge benchmark writes gigabytes). `close()` writes the header.
 * Entries are copied into the batch, so the caller may reuse its buffer after `add` resolves.
 */
export class HrlFileWriter {
    private batch: Buffer[] = [];
    private batchBytes = 0;
    private batchPosition: number;
    private closed = false;

    private constructor(
        private readonly handle: FileHandle,
        private readonly layout: HrlLayout,
    ) {
        const anchor = layout.start();
        this.batch.push(anchor.bytes);
        this.batchBytes = anchor.bytes.length;
        this.batchPosition = anchor.position;
    }

    /** Creates (or truncates) `path`. Options are checked before the file is touched. */
    static async create(path: string, options: HrlWriteOptions = {}): Promise<HrlFileWriter> {
        const layout = new HrlLayout(options);
        const handle = await open(path, 'w');
        return new HrlFileWriter(handle, layout);
    }

    /** Records a write of `data` at `diskOffset` (multiples of 512). */
    async add(diskOffset: number, data: Buffer, timestamp?: number): Promise<void> {
        if (this.closed) throw new Error('HrlFileWriter: add after close');
        for (const chunk of this.layout.add(diskOffset, data, timestamp)) {
            // Copy: the caller may reuse its buffer, and the block buffer is replaced by the layout anyway.
            this.batch.push(chunk.bytes === data ? Buffer.from(data) : chunk.bytes);
            this.batchBytes += chunk.bytes.length;
        }
        if (this.batchBytes >= FILE_BATCH_BYTES) await this.flush();
    }

    private async flush(): Promise<void> {
        if (this.batchBytes === 0) return;
        const parts = this.batch;
        let position = this.batchPosition;
        this.batch = [];
        this.batchPosition += this.batchBytes;
        this.batchBytes = 0;
        // writev may write less than asked; fall back to plain writes of the remainder.
        for (const part of parts) {
            let done = 0;
            while (done < part.length) {
                const { bytesWritten } = await this.handle.write(part, done, part.length - done, position + done);
                done += bytesWritten;
            }
            position += part.length;
        }
    }

    /** Writes the last metadata block and the header, closes the file, and returns the header written. */
    async close(): Promise<HrlHeader> {
        if (this.closed) throw new Error('HrlFileWriter: closed twice');
        this.closed = true;
        try {
            const { chunks, header } = this.layout.finish();
            for (const chunk of chunks) {
                this.batch.push(chunk.bytes);
                this.batchBytes += chunk.bytes.length;
            }
            await this.flush();
            await this.handle.write(header, 0, header.length, 0);
            await this.handle.sync();
            return decodeHrlHeader(header);
        } finally {
            await this.handle.close();
        }
    }

    /** Closes the file without writing the header (the file is left unusable: its cookie is zero). */
    async abandon(): Promise<void> {
        if (this.closed) return;
        this.closed = true;
        await this.handle.close();
    }
}
