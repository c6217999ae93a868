import { formatByteSize, parseByteSize } from '../../../shared/byteSize';

describe('parseByteSize (the CLI size arguments)', () => {
    it.each([
        ['4096', 4096],
        ['64M', 64 * 2 ** 20],
        ['64m', 64 * 2 ** 20],
        ['1G', 2 ** 30],
        ['1.5GiB', 1.5 * 2 ** 30],
        ['2TB', 2 * 2 ** 40],
        ['512k', 512 * 1024],
        [' 8 MiB ', 8 * 2 ** 20],
    ])('reads %s as %i bytes', (text, bytes) => {
        expect(parseByteSize(text)).toBe(bytes);
    });

    it.each(['', 'big', '-1', '1.3', '1X', '0.1K', '99999999999P'])('rejects "%s" naming the text', (text) => {
        expect(() => parseByteSize(text)).toThrow(
            expect.objectContaining({ code: 'VALIDATION_FAILED', message: expect.stringContaining(`"${text}"`) }),
        );
    });

    it('formats sizes for people', () => {
        expect(formatByteSize(512)).toBe('512 B');
        expect(formatByteSize(64 * 2 ** 20)).toBe('64 MiB');
        expect(formatByteSize(1.5 * 2 ** 30)).toBe('1.50 GiB');
    });
});
