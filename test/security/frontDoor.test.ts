import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { readdirSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { HttpFrontDoor, httpRoutes, functionRegistry } from '../../packages/functions-local/src';
import { LocalHost, startLocalHost } from '../../tools/platform';

const ROOT = resolve(__dirname, '..', '..');
/** The app as the worker loads it (TypeScript sources under jest), plus an orchestration that waits. */
const MODULES = [
    ...['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(ROOT, dir, f)),
    ),
    require.resolve('./fixtures/waitingApp'),
];
const TABLE_PREFIX = 'secfd';

interface ErrorBody {
    error?: { code?: string; message?: string };
}

/** A concrete path for a route template: each `{param...}` becomes a harmless value that fits any constraint. */
function concretePath(displayPath: string): string {
    return displayPath.replace(/\{\*?([A-Za-z0-9_]+)([^}]*)\}/g, (_m, name: string, constraint: string) => {
        const firstAlternative = /regex\(\^\(([A-Za-z0-9]+)/.exec(constraint)?.[1];
        return firstAlternative ?? `${name}1`;
    });
}

async function errorOf(res: Response): Promise<ErrorBody['error']> {
    return ((await res.json()) as ErrorBody).error;
}

describe('the front door asks for the key Azure asks for, on every route kind', () => {
    let host: LocalHost;
    const registry = functionRegistry();

    beforeAll(async () => {
        host = await startLocalHost({
            appRoot: ROOT,
            modules: MODULES,
            registry,
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            settings: { STATE_TABLE_PREFIX: TABLE_PREFIX },
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: () => undefined,
        });
        const started = await fetch(`${host.apiUrl}/security/waiters/waiter-1`, {
            method: 'POST',
            headers: { 'x-functions-key': host.functionKey },
        });
        expect(started.status).toBe(202);
        await host.runtime!.waitForStatus('waiter-1', (s) => s.runtimeStatus === 'Running', { timeoutMs: 20_000 });
    });
    afterAll(async () => {
        await host?.stop();
    });

    /** What an attack must leave as it was: every instance with its status. */
    async function instances(): Promise<string[]> {
        const all = await host.runtime!.listInstances({});
        return all.map((s) => `${s.instanceId}:${s.runtimeStatus}`).sort();
    }

    it('refuses every management route without a key and with a wrong one (UNAUTHORIZED), and handles none', async () => {
        const routes = httpRoutes(registry.byTriggerType('httpTrigger'), 'api').filter(
            (r) => r.authLevel !== 'anonymous',
        );
        expect(routes.length).toBeGreaterThan(10);
        const before = await instances();
        for (const route of routes) {
            for (const method of route.methods) {
                const url = `${host.url}${concretePath(route.displayPath)}`;
                const body = method === 'GET' || method === 'DELETE' ? undefined : '{}';
                const attempts: Record<string, string>[] = [
                    {},
                    { 'x-functions-key': 'wrong' },
                    { 'x-functions-key': host.durableExtensionKey },
                ];
                for (const headers of attempts) {
                    const res = await fetch(url, { method, headers, body });
                    expect({ route: route.displayPath, method, status: res.status }).toEqual({
                        route: route.displayPath,
                        method,
                        status: 401,
                    });
                    expect((await errorOf(res))?.code).toBe('UNAUTHORIZED');
                }
            }
        }
        expect(await instances()).toEqual(before);
    });

    it('opens an admin route with the master key only, not the function key', async () => {
        const url = `${host.apiUrl}/security/admin`;
        const withFunctionKey = await fetch(url, { headers: { 'x-functions-key': host.functionKey } });
        expect(withFunctionKey.status).toBe(401);
        expect((await errorOf(withFunctionKey))?.message).toMatch(/master key/);
        expect((await fetch(url, { headers: { 'x-functions-key': host.masterKey } })).status).toBe(200);
    });

    describe('the durable webhooks need the durabletask_extension system key (or the master key)', () => {
        const W = () => `${host.url}/runtime/webhooks/durabletask`;
        // Every row has a body slot: jest hands a shorter row's missing argument over as `done`.
        const attacks: [string, string, string | undefined][] = [
            ['GET', '/instances', undefined],
            ['GET', '/instances/waiter-1?showHistory=true', undefined],
            ['POST', '/instances/waiter-1/terminate?reason=evil', undefined],
            ['POST', '/instances/waiter-1/raiseEvent/release', '"evil"'],
            ['POST', '/orchestrators/securityWaiter/evil1', '{}'],
            ['DELETE', '/instances/waiter-1', undefined],
            ['DELETE', '/instances?runtimeStatus=Running', undefined],
        ];

        it.each(attacks)(
            'refuses %s %s without a key, with a wrong key and with the function key',
            async (method, path, body) => {
                const before = await instances();
                for (const key of [undefined, 'wrong', host.functionKey]) {
                    const headers: Record<string, string> = key ? { 'x-functions-key': key } : {};
                    const res = await fetch(`${W()}${path}`, { method, headers, body });
                    expect(res.status).toBe(401);
                    const text = await res.text();
                    expect(JSON.parse(text)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
                    expect(text).not.toContain('input-of-the-waiter');
                }
                // `?code=` with the function key is the same refusal.
                const byQuery = await fetch(`${W()}${path}${path.includes('?') ? '&' : '?'}code=${host.functionKey}`, {
                    method,
                    body,
                });
                expect(byQuery.status).toBe(401);
                expect(await instances()).toEqual(before);
                expect(await host.runtime!.getStatus('evil1')).toBeUndefined();
            },
        );

        it('refuses a path that climbs out of /api into the webhooks, encoded or not', async () => {
            for (const path of [
                '/api/../runtime/webhooks/durabletask/instances',
                '/api/%2e%2e/runtime/webhooks/durabletask/instances',
            ]) {
                const res = await fetch(`${host.url}${path}`, { headers: { 'x-functions-key': host.functionKey } });
                expect(res.status).toBe(401);
                expect(await res.text()).not.toContain('input-of-the-waiter');
            }
        });

        it('serves them with the system key, and the links the app hands out carry it', async () => {
            const listed = await fetch(`${W()}/instances`, {
                headers: { 'x-functions-key': host.durableExtensionKey },
            });
            expect(listed.status).toBe(200);
            expect(await listed.text()).toContain('waiter-1');
            expect((await fetch(`${W()}/instances?code=${host.masterKey}`)).status).toBe(200);

            const started = await fetch(`${host.apiUrl}/security/waiters/waiter-2`, {
                method: 'POST',
                headers: { 'x-functions-key': host.functionKey },
            });
            const links = (await started.json()) as Record<string, string>;
            expect(links.statusQueryGetUri).toContain(`${host.url}/runtime/webhooks/durabletask/instances/waiter-2?`);
            expect(new URL(links.statusQueryGetUri!).searchParams.get('code')).toBe(host.durableExtensionKey);
            expect(JSON.stringify(links)).not.toContain(host.runtime!.httpOrigin!);
            const status = await fetch(links.statusQueryGetUri!);
            expect(status.status).toBe(202);
            const raised = await fetch(links.sendEventPostUri!.replace('{eventName}', 'release'), {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: '"by the operator"',
            });
            expect(raised.status).toBe(202);
            await host.runtime!.waitForStatus('waiter-2', (s) => s.runtimeStatus === 'Completed', {
                timeoutMs: 20_000,
            });
        });
    });

    describe('one key rule: the x-functions-key header when present, else ?code=', () => {
        const url = () => `${host.apiUrl}/replicationPolicies`;

        it('refuses a wrong header even with a right ?code=', async () => {
            const res = await fetch(`${url()}?code=${host.functionKey}`, { headers: { 'x-functions-key': 'wrong' } });
            expect(res.status).toBe(401);
            expect((await errorOf(res))?.code).toBe('UNAUTHORIZED');
        });

        it('accepts a right header whatever ?code= says', async () => {
            const res = await fetch(`${url()}?code=wrong`, { headers: { 'x-functions-key': host.functionKey } });
            expect(res.status).toBe(200);
        });

        it('treats an empty header as no key rather than falling back to ?code=', async () => {
            const res = await fetch(`${url()}?code=${host.functionKey}`, { headers: { 'x-functions-key': '' } });
            expect(res.status).toBe(401);
        });
    });

    describe('bodies', () => {
        const key = () => ({ 'x-functions-key': host.functionKey });

        async function siteRows(): Promise<number> {
            const table = TableClient.fromConnectionString(
                process.env.AZURITE_CONNECTION_STRING!,
                `${TABLE_PREFIX}Sites`,
                {
                    allowInsecureConnection: true,
                },
            );
            let n = 0;
            try {
                for await (const _row of table.listEntities()) n++;
            } catch {
                return 0;
            }
            return n;
        }

        it('refuses a 10 MB binary body with its real size and the limit (BODY_TOO_LARGE), writing nothing', async () => {
            const before = await siteRows();
            const body = Buffer.alloc(10 * 1024 * 1024);
            for (let i = 0; i < body.length; i += 7) body[i] = 0xff;
            const res = await fetch(`${host.apiUrl}/sites`, {
                method: 'POST',
                headers: { ...key(), 'content-type': 'application/octet-stream' },
                body,
            });
            expect(res.status).toBe(413);
            const error = await errorOf(res);
            expect(error?.code).toBe('BODY_TOO_LARGE');
            expect(error?.message).toBe(`body is ${10 * 1024 * 1024} bytes; at most 65536 are accepted.`);
            expect(await siteRows()).toBe(before);
        });

        it.each([
            ['not JSON', '{"siteId": "s1",', 'VALIDATION_FAILED'],
            ['empty', '', 'VALIDATION_FAILED'],
            ['a JSON string, not an object', '"site"', 'VALIDATION_FAILED'],
            ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'VALIDATION_FAILED'],
        ])('refuses a malformed body (%s) with 400 %s, writing nothing', async (_what, body, code) => {
            const before = await siteRows();
            const res = await fetch(`${host.apiUrl}/sites`, { method: 'POST', headers: key(), body });
            expect(res.status).toBe(400);
            expect((await errorOf(res))?.code).toBe(code);
            expect(await siteRows()).toBe(before);
        });
    });

    describe('path-traversal ids', () => {
        const key = () => ({ 'x-functions-key': host.functionKey });

        it.each([
            ['GET', '/replicationProtectedItems/..%2F..%2FProtectedItems'],
            ['GET', '/replicationProtectedItems/%2e%2e'],
            ['POST', '/replicationProtectedItems/..%2Fvm-a1/resync'],
            ['PUT', '/replicationPolicies/..%2Fgold'],
            ['GET', '/sites/site-a%2F..%2F..'],
            ['GET', '/replicationJobs/..%5C..%5Cjob'],
        ])('refuses %s %s without touching anything', async (method, path) => {
            const before = await instances();
            const res = await fetch(`${host.apiUrl}${path}`, {
                method,
                headers: key(),
                body: method === 'GET' ? undefined : '{"copyFrequencySeconds":300}',
            });
            expect([400, 404]).toContain(res.status);
            expect(['VALIDATION_FAILED', 'NOT_FOUND', 'VM_NOT_FOUND']).toContain((await errorOf(res))?.code);
            expect(await instances()).toEqual(before);
        });
    });
});

describe('internal endpoints stay on loopback whatever --host says', () => {
    it('serves the front door on the interface asked for and the durable runtime only on 127.0.0.1', async () => {
        const host = await startLocalHost({
            appRoot: __dirname,
            modules: [require.resolve('./fixtures/waitingApp')],
            port: 0,
            hostname: '0.0.0.0',
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: () => undefined,
        });
        try {
            const internal = new URL(host.runtime!.httpOrigin!);
            expect(internal.hostname).toBe('127.0.0.1');
            const external = Object.values(networkInterfaces())
                .flat()
                .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
            if (!external) {
                console.log('No non-loopback IPv4 interface here: only the bound address is checked.');
                return;
            }
            const reach = (address: string, port: number) =>
                new Promise<boolean>((done) => {
                    const socket = connect({ host: address, port, timeout: 2000 });
                    socket.once('connect', () => (socket.destroy(), done(true)));
                    socket.once('error', () => done(false));
                    socket.once('timeout', () => (socket.destroy(), done(false)));
                });
            expect(await reach(external, Number(new URL(host.url).port))).toBe(true);
            expect(await reach(external, Number(internal.port))).toBe(false);
        } finally {
            await host.stop();
        }
    });

    it('answers a body over the platform limit with 413 and the limit, instead of dropping the connection', async () => {
        const door = new HttpFrontDoor({
            functions: [],
            routePrefix: 'api',
            keys: { function: 'f', master: 'm', durableExtension: 'd' },
            invoke: async () => undefined,
            accepting: () => true,
            durableOrigin: () => 'http://127.0.0.1:9',
            log: () => undefined,
            maxRequestBytes: 1024,
        });
        const url = await door.listen(0, '127.0.0.1');
        try {
            const res = await fetch(`${url}/runtime/webhooks/durabletask/instances/x/raiseEvent/e?code=d`, {
                method: 'POST',
                body: Buffer.alloc(4096, 1),
            });
            expect(res.status).toBe(413);
            expect(await res.json()).toMatchObject({ error: { code: 'REQUEST_TOO_LARGE', limitBytes: 1024 } });
        } finally {
            await door.stopListening();
            await door.finish(0);
        }
    });
});
