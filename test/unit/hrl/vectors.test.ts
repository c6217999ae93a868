import { encodeMetadataEntry, encodeMetadataHeader, HRL_ENTRY_SIZE, ME, MH } from '../../../shared/hrl/format';
import { byteSum, complementOf } from '../../../shared/hrl/checksum';
import { guidFromBytes, guidToBytes } from '../../../shared/hrl/guid';

describe('MS-HRL checksums against the spec example (section 3)', () => {
    it('reproduces the checksum of metadata header #2 (PreviousMetadataLocation 324096, 58 entries)', () => {
        const block = Buffer.alloc(32);
        encodeMetadataHeader(block, 0, 324096, 58);
        expect(block.readUInt32LE(MH.checksum)).toBe(4294966991);
    });

    it('reproduces the checksum of the all-zero metadata header #1', () => {
        const block = Buffer.alloc(32);
        encodeMetadataHeader(block, 0, 0, 0);
        expect(block.readUInt32LE(MH.checksum)).toBe(4294967295);
    });

    it.each([
        [1, 4096, 3626348544, 539842381, 4294966608],
        [2, 4096, 8026886144, 539842381, 4294966558],
        [37, 512, 3676929536, 539842382, 4294966664],
        [42, 31232, 3673764352, 539842382, 4294966413],
        [51, 4096, 10188185600, 539842382, 4294966776],
    ])('reproduces the checksum of entry #%i', (_n, length, diskOffset, timestamp, checksum) => {
        const block = Buffer.alloc(HRL_ENTRY_SIZE);
        encodeMetadataEntry(block, 0, { diskOffset, length, timestamp, dataChecksum: 0 });
        expect(block.readUInt32LE(ME.checksum)).toBe(checksum);
    });
});

describe('byteSum', () => {
    const reference = (b: Uint8Array): number => {
        let s = 0;
        for (const x of b) s += x;
        return s >>> 0;
    };

    it('matches a per-byte sum at every alignment and length around the kernel and staging boundaries', () => {
        const buf = Buffer.alloc(3 * 1024 * 1024 + 777);
        for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
        for (const start of [0, 1, 2, 3, 5]) {
            for (const length of [0, 1, 63, 64, 65, 1023, 1024, 1025, 1024 * 1024 + 13, buf.length - start]) {
                const view = buf.subarray(start, start + length);
                expect(byteSum(view)).toBe(reference(view));
            }
        }
    });

    it('wraps modulo 2^32 like the 32-bit field it fills', () => {
        const ones = Buffer.alloc(17 * 1024 * 1024, 0xff); // 0xff * 17 MiB > 2^32
        expect(byteSum(ones)).toBe((0xff * ones.length) % 2 ** 32);
        expect(byteSum(ones, 0xffffffff)).toBe((0xff * ones.length + 0xffffffff) % 2 ** 32);
    });

    it('complements like the spec: an empty sum gives 0xffffffff', () => {
        expect(complementOf(byteSum(Buffer.alloc(0)))).toBe(0xffffffff);
    });
});

describe('GUIDs', () => {
    it('stores the first three groups little-endian, as Windows does', () => {
        const bytes = guidToBytes('572fc7ff-1f03-49ab-8c2d-0123456789ab');
        expect(bytes.toString('hex')).toBe('ffc72f57031fab498c2d0123456789ab');
        expect(guidFromBytes(bytes)).toBe('572fc7ff-1f03-49ab-8c2d-0123456789ab');
    });

    it('accepts upper case and renders lower case', () => {
        expect(guidFromBytes(guidToBytes('572FC7FF-1F03-49AB-8C2D-0123456789AB'))).toBe(
            '572fc7ff-1f03-49ab-8c2d-0123456789ab',
        );
    });

    it('rejects anything that is not 8-4-4-4-12 hex', () => {
        expect(() => guidToBytes('572fc7ff1f0349ab8c2d0123456789ab')).toThrow(RangeError);
        expect(() => guidToBytes('572fc7ff-1f03-49ab-8c2d-0123456789ag')).toThrow(RangeError);
    });
});
