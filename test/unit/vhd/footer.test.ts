import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HvrError } from '../../../shared/errors';
import {
    chsGeometry,
    decodeVhdFooter,
    encodeVhdFooter,
    MIB,
    replicaBlobSize,
    roundUpToMiB,
    VHD_FOOTER_SIZE,
} from '../../../shared/vhd/footer';

const QEMU_IMG = ['/usr/bin/qemu-img', '/usr/local/bin/qemu-img'].find((p) => existsSync(p));
const withQemu = QEMU_IMG ? it : it.skip;
const STAMP = new Date('2024-05-01T00:00:00Z');

function footerError(buf: Buffer): HvrError {
    try {
        decodeVhdFooter(buf);
    } catch (err) {
        if (err instanceof HvrError) return err;
        throw err;
    }
    throw new Error('footer accepted');
}

function reseal(buf: Buffer): void {
    let sum = 0;
    for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += buf[i]!;
    buf.writeUInt32BE(~sum >>> 0, 64);
}

describe('fixed VHD footer', () => {
    it('round-trips through decode with the fields a replica needs', () => {
        const id = '6f1f4b5e-0d2c-4c55-9a51-2b0f0a8e0c11';
        const footer = encodeVhdFooter({ virtualSize: 64 * MIB, uniqueId: id, timestamp: STAMP });
        expect(footer.length).toBe(VHD_FOOTER_SIZE);
        expect(footer.toString('latin1', 0, 8)).toBe('conectix');
        const d = decodeVhdFooter(footer);
        expect(d).toMatchObject({
            currentSize: 64 * MIB,
            originalSize: 64 * MIB,
            diskType: 2,
            formatVersion: 0x10000,
            creatorHostOs: 'Wi2k',
            uniqueId: id,
            savedState: 0,
        });
        expect(d.timestamp.toISOString()).toBe(STAMP.toISOString());
        expect(footer.readBigUInt64BE(16)).toBe(0xffffffffffffffffn);
    });

    it.each([
        // Values worked through the VHD specification's algorithm by hand.
        [64 * MIB, { cylinders: 963, heads: 8, sectorsPerTrack: 17 }],
        [1024 * MIB, { cylinders: 2080, heads: 16, sectorsPerTrack: 63 }],
        [127 * 1024 * MIB, { cylinders: 65278, heads: 16, sectorsPerTrack: 255 }],
        [8 * 1024 * 1024 * MIB - MIB, { cylinders: 65535, heads: 16, sectorsPerTrack: 255 }],
        [20 * MIB, { cylinders: 602, heads: 4, sectorsPerTrack: 17 }],
    ])('derives the CHS geometry of %i bytes', (size, geometry) => {
        expect(chsGeometry(size)).toEqual(geometry);
    });

    it('sizes replicas: rounded up to a MiB, plus the footer, within a page blob', () => {
        expect(roundUpToMiB(0)).toBe(0);
        expect(roundUpToMiB(1)).toBe(MIB);
        expect(roundUpToMiB(MIB)).toBe(MIB);
        expect(replicaBlobSize(10 * MIB + 1)).toBe(11 * MIB + 512);
        expect(replicaBlobSize(MIB)).toBe(MIB + 512);
        expect(() => replicaBlobSize(0)).toThrow(expect.objectContaining({ code: 'VHD_SIZE_INVALID' }));
        expect(() => replicaBlobSize(8 * 1024 * 1024 * MIB)).toThrow(
            expect.objectContaining({ code: 'VHD_SIZE_INVALID' }),
        );
    });

    it('refuses to encode a size that is not whole MiB', () => {
        expect(() => encodeVhdFooter({ virtualSize: MIB + 512 })).toThrow(
            expect.objectContaining({ code: 'VHD_SIZE_INVALID' }),
        );
    });

    it.each([
        ['cookie', (b: Buffer) => b.write('conectiy', 0, 'ascii'), /cookie/],
        ['disk type', (b: Buffer) => b.writeUInt32BE(3, 60), /disk type/],
        [
            'current size off the MiB grid',
            (b: Buffer) => b.writeBigUInt64BE(BigInt(64 * MIB + 512), 48),
            /current size/,
        ],
        ['geometry', (b: Buffer) => b.writeUInt16BE(962, 56), /geometry/],
        ['data offset', (b: Buffer) => b.writeBigUInt64BE(512n, 16), /data offset/],
        ['format version', (b: Buffer) => b.writeUInt32BE(0x20000, 12), /format version/],
    ])('rejects a footer with a bad %s', (_name, edit, message) => {
        const footer = encodeVhdFooter({ virtualSize: 64 * MIB, timestamp: STAMP });
        edit(footer);
        reseal(footer);
        const err = footerError(footer);
        expect(err.code).toBe('VHD_FOOTER_INVALID');
        expect(err.message).toMatch(message);
    });

    it('rejects a bad checksum and a wrong length', () => {
        const footer = encodeVhdFooter({ virtualSize: 64 * MIB, timestamp: STAMP });
        footer[100]! ^= 1;
        expect(footerError(footer).message).toMatch(/checksum/);
        expect(footerError(footer.subarray(0, 511)).code).toBe('VHD_FOOTER_INVALID');
    });

    describe('as qemu-img reads it (skipped where qemu-img is missing)', () => {
        let dir: string;
        beforeAll(() => {
            dir = mkdtempSync(join(tmpdir(), 'vhd-'));
        });
        afterAll(() => rmSync(dir, { recursive: true, force: true }));

        withQemu('is a fixed VHD of the right virtual size, and its bytes equal the raw image', () => {
            const size = 20 * MIB;
            const raw = Buffer.alloc(size);
            for (let i = 0; i < size; i += 4096) raw.writeUInt32LE((i * 2654435761) >>> 0, i);
            const rawPath = join(dir, 'disk.raw');
            const vhdPath = join(dir, 'disk.vhd');
            writeFileSync(rawPath, raw);
            writeFileSync(vhdPath, Buffer.concat([raw, encodeVhdFooter({ virtualSize: size, timestamp: STAMP })]));
            const info = JSON.parse(
                execFileSync(QEMU_IMG!, ['info', '-f', 'vpc', '--output', 'json', vhdPath], { encoding: 'utf8' }),
            ) as { format: string; 'virtual-size': number };
            expect(info.format).toBe('vpc');
            expect(info['virtual-size']).toBe(size);
            const compare = execFileSync(QEMU_IMG!, ['compare', '-f', 'raw', '-F', 'vpc', rawPath, vhdPath], {
                encoding: 'utf8',
            });
            expect(compare).toMatch(/Images are identical/);
        });

        withQemu('accepts zeros plus our footer for a large sparse disk', () => {
            const size = 1024 * MIB;
            const vhdPath = join(dir, 'zeros.vhd');
            writeFileSync(vhdPath, Buffer.alloc(0));
            execFileSync('truncate', ['-s', String(size), vhdPath]);
            const footer = encodeVhdFooter({ virtualSize: size, timestamp: STAMP });
            execFileSync('sh', ['-c', `cat >> '${vhdPath}'`], { input: footer });
            const info = JSON.parse(
                execFileSync(QEMU_IMG!, ['info', '-f', 'vpc', '--output', 'json', vhdPath], { encoding: 'utf8' }),
            ) as { 'virtual-size': number };
            expect(info['virtual-size']).toBe(size);
        });
    });
});
