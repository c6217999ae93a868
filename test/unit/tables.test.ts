import { decodeKey, encodeKey, assertEntityWithinLimits } from '../../shared/state/tables';

describe('table keys', () => {
    it('round-trips any string and never emits a character Azure forbids in keys', () => {
        for (const s of ['vm-1', 'site/a#b?c\\d', "ä~%!*()'", '\u0001x', 'a~2F']) {
            const key = encodeKey(s);
            // eslint-disable-next-line no-control-regex
            expect(key).not.toMatch(/[/\\#?\u0000-\u001f\u007f-\u009f]/);
            expect(decodeKey(key)).toBe(s);
        }
        expect(encodeKey('site/a')).not.toBe(encodeKey('site~2Fa'));
        expect(encodeKey('0f8fad5b-d9cb-469f-a165-70867728950e')).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
    });

    it('rejects an entity with a string property over 64 KiB as UTF-16', () => {
        expect(() => assertEntityWithinLimits({ partitionKey: 'p', rowKey: 'r', big: 'x'.repeat(40000) })).toThrow(
            /64 KiB/,
        );
        expect(() => assertEntityWithinLimits({ partitionKey: 'p', rowKey: 'r', ok: 'x'.repeat(30000) })).not.toThrow();
    });
});
