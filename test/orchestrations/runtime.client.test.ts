import { HttpRequest, type HttpResponseInit } from '@azure/functions';
import * as df from 'durable-functions';
import {
    durableClientBindings,
    DurableRuntime,
    functionRegistry,
    invokeFunction,
    VirtualClock,
} from '../../packages/functions-local/src';
import './fixtures/client';
import './fixtures/events';
import './fixtures/chain';

const START = new Date('2025-03-01T10:00:00.000Z');

function request(method: string, action: string, instanceId: string, body?: unknown): HttpRequest {
    return new HttpRequest({
        method,
        url: `http://localhost:7071/api/fixture/${action}/${encodeURIComponent(instanceId)}`,
        params: { action, instanceId },
        ...(body === undefined ? {} : { body: { string: JSON.stringify(body) } }),
    });
}

async function call(runtime: DurableRuntime, method: string, action: string, instanceId: string, body?: unknown) {
    const { result } = await invokeFunction(
        functionRegistry().get('fixtureStarter'),
        request(method, action, instanceId, body),
        { bindings: [durableClientBindings(runtime)] },
    );
    return result as HttpResponseInit;
}

describe('the real durable client against the runtime', () => {
    let runtime: DurableRuntime;

    beforeEach(() => {
        runtime = new DurableRuntime({ registry: functionRegistry(), clock: new VirtualClock(START), taskHub: 'hub1' });
    });
    afterEach(() => runtime.close());

    it('starts, raises events to and reads the status of an orchestration through df.getClient', async () => {
        const started = await call(runtime, 'POST', 'start', 'client:1');
        expect(started).toMatchObject({ status: 202, jsonBody: { id: 'client:1' } });
        await runtime.runUntilIdle();

        let status = (await call(runtime, 'GET', 'status', 'client:1')).jsonBody as df.DurableOrchestrationStatus;
        expect(status.createdTime).toBeInstanceOf(Date);
        expect(status).toMatchObject({
            name: 'fixtureCollect',
            instanceId: 'client:1',
            runtimeStatus: 'Running',
            input: 2,
        });

        await call(runtime, 'POST', 'raise', 'client:1', { n: 1 });
        await call(runtime, 'POST', 'raise', 'client:1', 'two');
        await runtime.runUntilIdle();
        status = (await call(runtime, 'GET', 'status', 'client:1')).jsonBody as df.DurableOrchestrationStatus;
        expect(status).toMatchObject({
            runtimeStatus: 'Completed',
            output: [{ n: 1 }, 'two'],
            customStatus: { received: 2 },
        });
        expect(status.createdTime).toEqual(START);

        const listed = await call(runtime, 'GET', 'list', '-');
        expect(listed.jsonBody).toEqual(['client:1']);
        const purged = await call(runtime, 'DELETE', 'purge', 'client:1');
        expect(purged.jsonBody).toMatchObject({ instancesDeleted: 1 });
        expect(await runtime.getStatus('client:1')).toBeUndefined();
    });

    it('surfaces the runtime errors the way the extension does', async () => {
        await call(runtime, 'POST', 'start', 'client:2');
        await runtime.runUntilIdle();
        // A second start of a running id is refused.
        await expect(call(runtime, 'POST', 'start', 'client:2')).rejects.toThrow(/unexpected status code: 409/);
        // Raising to a missing instance: 404, which the client turns into an error.
        await expect(call(runtime, 'POST', 'raise', 'nobody', 1)).rejects.toThrow(
            "No instance with ID 'nobody' found.",
        );
        // Status of a missing instance: the client throws.
        await expect(call(runtime, 'GET', 'status', 'nobody')).rejects.toThrow(/HTTP 404/);

        await call(runtime, 'POST', 'terminate', 'client:2');
        await runtime.runUntilIdle();
        expect(await runtime.getStatus('client:2')).toMatchObject({
            runtimeStatus: 'Terminated',
            output: 'operator asked',
        });
        // Raising to and terminating a finished instance: 410, which the client accepts silently.
        await expect(call(runtime, 'POST', 'raise', 'client:2', 1)).resolves.toMatchObject({ status: 202 });
        await expect(call(runtime, 'POST', 'terminate', 'client:2')).resolves.toMatchObject({ status: 202 });
        // Purging a missing instance: the client reports nothing deleted.
        await expect(call(runtime, 'DELETE', 'purge', 'nobody')).resolves.toMatchObject({
            jsonBody: { instancesDeleted: 0 },
        });
    });

    it('builds a check-status response whose links reach this runtime', async () => {
        const binding = (await runtime.clientBinding()) as { rpcBaseUrl: string; taskHubName: string };
        expect(binding.taskHubName).toBe('hub1');
        const id = await runtime.startNew('fixtureChain', { input: ['x'] });
        await runtime.runUntilIdle();
        const statusUrl = `${runtime.httpOrigin}/runtime/webhooks/durabletask/instances/${id}?taskHub=hub1`;
        const response = await fetch(statusUrl, { signal: AbortSignal.timeout(5000) });
        expect(response.status).toBe(200);
        expect(await response.json()).toMatchObject({ instanceId: id, runtimeStatus: 'Completed', output: ['x'] });
        const unknown = await fetch(`${runtime.httpOrigin}/durabletask/entities/x`, {
            signal: AbortSignal.timeout(5000),
        });
        expect(unknown.status).toBe(501);
    });

    it('invokeFunction refuses a durable client binding without a runtime', async () => {
        await expect(
            invokeFunction(functionRegistry().get('fixtureStarter'), request('GET', 'status', 'x')),
        ).rejects.toMatchObject({ code: 'CONFIG_MISSING' });
    });
});

describe('the runtime on the real clock', () => {
    it('runs work as it arrives and waitForStatus waits for it', async () => {
        const runtime = new DurableRuntime({ registry: functionRegistry() });
        try {
            const id = await runtime.startNew('fixtureApproval', { input: 50 });
            const status = await runtime.waitForStatus(id, (s) => s.runtimeStatus === 'Completed', {
                timeoutMs: 10_000,
            });
            expect(status.output).toEqual({ approved: false });

            const waiting = await runtime.startNew('fixtureCollect', { input: 1 });
            await expect(
                runtime.waitForStatus(waiting, (s) => s.runtimeStatus === 'Completed', { timeoutMs: 200 }),
            ).rejects.toMatchObject({ code: 'TIMEOUT' });
            await runtime.raiseEvent(waiting, 'Item', 'now');
            await expect(
                runtime.waitForStatus(waiting, (s) => s.runtimeStatus === 'Completed', { timeoutMs: 10_000 }),
            ).resolves.toMatchObject({ output: ['now'] });
        } finally {
            await runtime.close();
        }
    });
});
