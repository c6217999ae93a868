import { boundedBusCall } from '../../../shared/bus/boundedCall';

const never = () => new Promise<never>(() => undefined);

describe('boundedBusCall', () => {
    it('gives the call its answer when it comes in time', async () => {
        await expect(boundedBusCall(Promise.resolve(7), { what: 'receive', timeoutMs: 1_000 })).resolves.toBe(7);
        await expect(
            boundedBusCall(Promise.reject(new Error('refused')), { what: 'complete', timeoutMs: 1_000 }),
        ).rejects.toThrow('refused');
    });

    it('ends a call that never answers with TIMEOUT, naming the operation', async () => {
        await expect(
            boundedBusCall(never(), { what: 'complete', timeoutMs: 200, details: { sessionId: 'vm-1' } }),
        ).rejects.toMatchObject({ code: 'TIMEOUT', details: { operation: 'complete', sessionId: 'vm-1' } });
    });

    it('ends it with TRANSIENT as soon as its receiver is closed, well before the timeout', async () => {
        let closed = false;
        setTimeout(() => (closed = true), 150);
        const started = Date.now();
        await expect(
            boundedBusCall(never(), { what: 'abandon', timeoutMs: 60_000, closed: () => closed }),
        ).rejects.toMatchObject({ code: 'TRANSIENT' });
        expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('does not turn a late rejection of the call into an unhandled one', async () => {
        const unhandled: unknown[] = [];
        const onUnhandled = (reason: unknown) => unhandled.push(reason);
        process.on('unhandledRejection', onUnhandled);
        try {
            const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('late')), 300));
            await expect(boundedBusCall(late, { what: 'complete', timeoutMs: 100 })).rejects.toMatchObject({
                code: 'TIMEOUT',
            });
            await new Promise((r) => setTimeout(r, 400));
            expect(unhandled).toEqual([]);
        } finally {
            process.off('unhandledRejection', onUnhandled);
        }
    });
});
