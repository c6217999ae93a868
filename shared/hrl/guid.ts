import { randomUUID } from 'node:crypto';

const GUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The all-zero GUID: "no previous log", "no data-write GUID". */
export const NIL_GUID = '00000000-0000-0000-0000-000000000000';

/** Whether `text` is a GUID in our canonical form (lowercase 8-4-4-4-12). */
export function isGuid(text: string): boolean {
    return GUID_PATTERN.test(text);
}

/**
 * The 16 bytes of a GUID as Windows stores it: the first three groups little-endian, the last two as written.
 * Accepts upper or lower case; throws a RangeError on anything that is not 8-4-4-4-12 hex.
 */
export function guidToBytes(guid: string, target: Buffer = Buffer.alloc(16), offset = 0): Buffer {
    const text = guid.toLowerCase();
    if (!GUID_PATTERN.test(text)) throw new RangeError(`not a GUID: "${guid}"`);
    const hex = text.replace(/-/g, '');
    const raw = Buffer.from(hex, 'hex');
    target.writeUInt32LE(raw.readUInt32BE(0), offset);
    target.writeUInt16LE(raw.readUInt16BE(4), offset + 4);
    target.writeUInt16LE(raw.readUInt16BE(6), offset + 6);
    raw.copy(target, offset + 8, 8, 16);
    return target;
}

/** Reads a Windows-layout GUID at `offset` as a lowercase 8-4-4-4-12 string. */
export function guidFromBytes(buf: Buffer, offset = 0): string {
    if (offset < 0 || offset + 16 > buf.length)
        throw new RangeError(`GUID at ${offset} is outside ${buf.length} bytes`);
    const a = buf.readUInt32LE(offset).toString(16).padStart(8, '0');
    const b = buf
        .readUInt16LE(offset + 4)
        .toString(16)
        .padStart(4, '0');
    const c = buf
        .readUInt16LE(offset + 6)
        .toString(16)
        .padStart(4, '0');
    const d = buf.toString('hex', offset + 8, offset + 10);
    const e = buf.toString('hex', offset + 10, offset + 16);
    return `${a}-${b}-${c}-${d}-${e}`;
}

/** A fresh random GUID (version 4). */
export function newGuid(): string {
    return randomUUID();
}
