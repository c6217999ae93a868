import { app, HttpRequest } from '@azure/functions';
import { functionRegistry, invocationCounts, invokeFunction } from '../../../packages/functions-local/src';

app.http('countedOk', { methods: ['GET'], handler: async () => ({ status: 200 }) });
app.http('countedFails', {
    methods: ['GET'],
    handler: async () => {
        throw new Error('no');
    },
});

const request = () => new HttpRequest({ method: 'GET', url: 'http://localhost/api/x' });
const countOf = (name: string) => invocationCounts().find((c) => c.name === name);

describe('invocation counter', () => {
    it('counts every execution through invokeFunction, failures too, with the time spent', async () => {
        await invokeFunction(functionRegistry().get('countedOk'), request());
        await invokeFunction(functionRegistry().get('countedOk'), request());
        await expect(invokeFunction(functionRegistry().get('countedFails'), request())).rejects.toThrow('no');
        expect(countOf('countedOk')).toMatchObject({ triggerType: 'httpTrigger', count: 2, failed: 0 });
        expect(countOf('countedFails')).toMatchObject({ count: 1, failed: 1 });
        const ok = countOf('countedOk')!;
        expect(ok.totalMs).toBeGreaterThanOrEqual(0);
        expect(ok.maxMs).toBeLessThanOrEqual(ok.totalMs);
        // A copy: changing it changes nothing.
        ok.count = 99;
        expect(countOf('countedOk')!.count).toBe(2);
    });
});
