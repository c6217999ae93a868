import { canonicalInstant, laterInstant } from '../../../shared/storage/instants';

describe('instants that crossed an orchestration', () => {
    it("restores toISOString's three fractional digits to the real engine's shortest forms", () => {
        expect(canonicalInstant('2026-12-02T03:50:37.69Z')).toBe('2026-12-02T03:50:37.690Z');
        expect(canonicalInstant('2026-12-02T03:50:37Z')).toBe('2026-12-02T03:50:37.000Z');
        expect(canonicalInstant('2026-12-02T03:50:37.6Z')).toBe('2026-12-02T03:50:37.600Z');
        expect(canonicalInstant('2026-12-02T03:50:37.695Z')).toBe('2026-12-02T03:50:37.695Z');
    });

    it('keeps longer fractions and anything that is not a UTC instant as it is', () => {
        expect(canonicalInstant('2026-12-02T03:50:37.8640000Z')).toBe('2026-12-02T03:50:37.8640000Z');
        expect(canonicalInstant('2026-12-02T03:50:37+01:00')).toBe('2026-12-02T03:50:37+01:00');
        expect(canonicalInstant('vm-1')).toBe('vm-1');
        expect(canonicalInstant('')).toBe('');
    });

    it('orders by instant where the text would misorder', () => {
        // As text '…37.69Z' sorts after '…37.695Z'; as instants it is earlier.
        expect('2026-12-02T03:50:37.69Z' > '2026-12-02T03:50:37.695Z').toBe(true);
        expect(laterInstant('2026-12-02T03:50:37.695Z', '2026-12-02T03:50:37.69Z')).toBe('2026-12-02T03:50:37.695Z');
        expect(laterInstant('2026-12-02T03:50:37.69Z', '2026-12-02T03:50:37.695Z')).toBe('2026-12-02T03:50:37.695Z');
        expect(laterInstant(undefined, '2026-12-02T03:50:37Z')).toBe('2026-12-02T03:50:37Z');
    });
});
