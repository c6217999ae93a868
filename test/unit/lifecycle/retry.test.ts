import { HvrError } from '../../../shared/errors';
import { outcomeOf, retryDelay, transientFailure } from '../../../shared/retry';

describe('retryDelay', () => {
    it('waits 1, 2, 4, 8 and 10 minutes, then every 30 minutes', () => {
        const minutes = [1, 2, 3, 4, 5, 6, 7, 50].map((attempt) => retryDelay(attempt) / 60_000);
        expect(minutes).toEqual([1, 2, 4, 8, 10, 30, 30, 30]);
    });

    it('rejects an attempt count below 1 or not whole', () => {
        expect(() => retryDelay(0)).toThrow(/≥ 1, got 0/);
        expect(() => retryDelay(1.5)).toThrow(/got 1.5/);
    });
});

describe('activity outcomes', () => {
    it('turns an HvrError into a failure that keeps its code and class', async () => {
        const broken = await outcomeOf(() => Promise.reject(new HvrError('CHAIN_BROKEN', 'log 7 does not follow 6')));
        expect(broken).toEqual({
            ok: false,
            code: 'CHAIN_BROKEN',
            message: 'log 7 does not follow 6',
            recoverable: false,
        });
        const busy = await outcomeOf(() => Promise.reject(new HvrError('TRANSIENT', 'busy')));
        expect(busy).toMatchObject({ ok: false, recoverable: true });
        expect(await outcomeOf(() => Promise.resolve(3))).toEqual({ ok: true, value: 3 });
    });

    it('rethrows anything else, which the orchestrator then treats as recoverable', async () => {
        await expect(outcomeOf(() => Promise.reject(new Error('socket hang up')))).rejects.toThrow('socket hang up');
        expect(transientFailure(new Error('socket hang up \n at x'))).toMatchObject({
            code: 'TRANSIENT',
            recoverable: true,
        });
    });
});
