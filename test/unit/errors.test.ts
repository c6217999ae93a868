import { HvrError, ensureErrorType, errorCodeOf } from '../../shared/errors';

describe('errors', () => {
    it('classes a broken chain as non-recoverable and a timeout as recoverable', () => {
        expect(new HvrError('CHAIN_BROKEN', 'x').recoverable).toBe(false);
        expect(new HvrError('TIMEOUT', 'x').recoverable).toBe(true);
    });

    it('turns anything thrown into an Error and unknown failures into TRANSIENT', () => {
        expect(ensureErrorType('boom').message).toBe('boom');
        expect(ensureErrorType({ a: 1 }).message).toBe('{"a":1}');
        expect(errorCodeOf(new Error('x'))).toBe('TRANSIENT');
        expect(errorCodeOf(new HvrError('VM_NOT_FOUND', 'gone'))).toBe('VM_NOT_FOUND');
    });
});
