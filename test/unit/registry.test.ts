import { HttpRequest, InvocationContext, HttpResponseInit } from '@azure/functions';
import { functionRegistry } from '../../packages/functions-local/src';
import '../../functions/health';

describe('capturing the app registrations', () => {
    it('captures an HTTP function with its route and calls its handler as the worker would', async () => {
        const fn = functionRegistry().get('health');
        expect(fn.trigger).toMatchObject({ type: 'httpTrigger', route: 'health', methods: ['GET'] });
        const request = new HttpRequest({ method: 'GET', url: 'http://localhost:7071/api/health' });
        const response = (await fn.handler(
            request,
            new InvocationContext({ functionName: 'health' }),
        )) as HttpResponseInit;
        expect(response.status).toBe(200);
        expect(response.jsonBody).toMatchObject({ status: 'ok' });
    });
});
