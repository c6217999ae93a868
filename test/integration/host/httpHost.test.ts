import { startLocalHost, LocalHost } from '../../../tools/platform';
import { probe } from './fixtures/probe';

const FIXTURES = [require.resolve('./fixtures/httpApp')];

function hostOptions(lines: string[] = []) {
    return {
        appRoot: __dirname,
        modules: FIXTURES,
        port: 0,
        storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
        blobScanIntervalMs: 0,
        timers: false,
        queuePolling: false,
        log: (line: string) => lines.push(line),
    };
}

describe('the local host serves HTTP functions over a real socket', () => {
    let host: LocalHost;
    const lines: string[] = [];

    beforeAll(async () => {
        host = await startLocalHost(hostOptions(lines));
    });
    afterAll(async () => {
        await host?.stop();
    });
    beforeEach(() => probe.reset());

    it('serves an anonymous route under /api', async () => {
        const res = await fetch(`${host.apiUrl}/health`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('ok');
        expect(host.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api$/);
    });

    it('rejects a function-level route without the key and accepts ?code= or x-functions-key', async () => {
        const url = `${host.apiUrl}/vms/vm-7`;
        expect((await fetch(url)).status).toBe(401);
        expect((await fetch(`${url}?code=wrong`)).status).toBe(401);
        expect((await fetch(url, { headers: { 'x-functions-key': 'wrong' } })).status).toBe(401);
        const byQuery = await fetch(`${url}?code=${encodeURIComponent(host.functionKey)}`);
        expect(byQuery.status).toBe(200);
        const byHeader = await fetch(url, { headers: { 'x-functions-key': host.functionKey } });
        expect(byHeader.status).toBe(200);
        expect(byHeader.headers.get('x-fixture')).toBe('getVm');
    });

    it('passes route values, repeated query parameters and decodes escaped segments', async () => {
        const res = await fetch(`${host.apiUrl}/vms/vm%201?view=full&tag=a&tag=b`, {
            headers: { 'x-functions-key': host.functionKey },
        });
        expect(await res.json()).toEqual({ vmId: 'vm 1', view: 'full', tags: ['a', 'b'] });
    });

    it('prefers a literal route over a parameter in the same place', async () => {
        const res = await fetch(`${host.apiUrl}/vms/summary`);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ summary: true });
    });

    it('serves an optional parameter with and without its value', async () => {
        expect(await (await fetch(`${host.apiUrl}/jobs`)).json()).toEqual({ id: null });
        expect(await (await fetch(`${host.apiUrl}/jobs/job-9`)).json()).toEqual({ id: 'job-9' });
    });

    it('applies an int constraint: a non-number is not found', async () => {
        const ok = await fetch(`${host.apiUrl}/points/12`);
        expect(await ok.json()).toEqual({ n: 12 });
        expect((await fetch(`${host.apiUrl}/points/twelve`)).status).toBe(404);
    });

    it('answers 405 with Allow for a method the route does not take, and honours the ones it does', async () => {
        const res = await fetch(`${host.apiUrl}/points/3`, { method: 'PUT' });
        expect(res.status).toBe(405);
        expect(res.headers.get('allow')).toBe('GET, DELETE');
        expect((await fetch(`${host.apiUrl}/points/3`, { method: 'DELETE' })).status).toBe(202);
    });

    it('gives the handler the JSON body and returns its HttpResponse status, headers and body', async () => {
        const res = await fetch(`${host.apiUrl}/echo`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ vmId: 'vm-1', disks: 2 }),
        });
        expect(res.status).toBe(201);
        expect(res.headers.get('content-type')).toBe('application/json');
        expect(await res.json()).toEqual({
            received: { vmId: 'vm-1', disks: 2 },
            contentType: 'application/json',
        });
        expect(probe.of('fixtureEcho')).toHaveLength(1);
    });

    it('answers 204 when the function returns nothing and 500 when it throws (logging why)', async () => {
        expect((await fetch(`${host.apiUrl}/nothing`, { method: 'POST' })).status).toBe(204);
        const broken = await fetch(`${host.apiUrl}/broken`);
        expect(broken.status).toBe(500);
        expect(lines.some((l) => l.includes('fixtureBroken failed') && l.includes('fixture failure'))).toBe(true);
    });

    it('answers 404 outside the route prefix and for unknown routes', async () => {
        expect((await fetch(`${host.url}/health`)).status).toBe(404);
        expect((await fetch(`${host.apiUrl}/nowhere`)).status).toBe(404);
    });

    it('lists every function with its trigger and URL', () => {
        const getVm = host.functions.find((f) => f.name === 'fixtureGetVm');
        expect(getVm).toEqual({
            name: 'fixtureGetVm',
            trigger: 'http',
            detail: `GET ${host.apiUrl}/vms/{vmId} (key: function)`,
        });
    });
});

describe('stopping the host (what Ctrl-C does)', () => {
    beforeEach(() => probe.reset());

    it('refuses new requests, lets the one in flight finish, then stops', async () => {
        const host = await startLocalHost(hostOptions());
        let release!: () => void;
        probe.gate = new Promise<void>((resolve) => (release = resolve));
        const slow = fetch(`${host.apiUrl}/slow`, { method: 'POST' });
        while (probe.of('fixtureSlow').length === 0) await new Promise((r) => setTimeout(r, 10));

        let stopped = false;
        const stopping = host.stop().then((r) => {
            stopped = true;
            return r;
        });
        await new Promise((r) => setTimeout(r, 50));
        expect(stopped).toBe(false);
        await expect(fetch(`${host.apiUrl}/health`)).rejects.toThrow();

        release();
        const response = await slow;
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ finished: true });
        expect(await stopping).toEqual({ abandonedInvocations: 0 });
    });

    it('gives up on an invocation that outlives the drain bound and says so', async () => {
        const lines: string[] = [];
        const host = await startLocalHost({ ...hostOptions(lines), drainTimeoutMs: 100 });
        probe.gate = new Promise<void>(() => undefined);
        const slow = fetch(`${host.apiUrl}/slow`, { method: 'POST' }).catch((err: unknown) => err);
        while (probe.of('fixtureSlow').length === 0) await new Promise((r) => setTimeout(r, 10));
        expect(await host.stop()).toEqual({ abandonedInvocations: 1 });
        expect(lines).toContain('Stopped with 1 invocation(s) still running.');
        expect(await slow).toMatchObject({ message: 'fetch failed' });
    });
});
