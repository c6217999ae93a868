import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { HttpRequest, HttpResponse } from '@azure/functions';
import { ensureErrorType } from '../errors';
import { DURABLE_WEBHOOK_PATH, publicWebhookText } from './durableWebhooks';
import { RegisteredFunction } from './registry';
import { compareRoutePrecedence, parseRouteTemplate, RouteTemplate } from './routeTemplate';

/** One HTTP function as the front door routes to it. */
export interface HttpRoute {
    fn: RegisteredFunction;
    template: RouteTemplate;
    /** Upper-case methods the function accepts. */
    methods: string[];
    authLevel: 'anonymous' | 'function' | 'admin';
    /** The path as printed at start, with the prefix: `/api/vms/{vmId}`. */
    displayPath: string;
}

/**
 * The keys the front door checks, as the Functions host keeps them: a host key for `authLevel: 'function'`,
 * the master key (`_master`) for everything, and the Durable extension's system key for its webhooks.
 */
export interface HostKeys {
    function: string;
    master: string;
    /** The system key `durabletask_extension`: `/runtime/webhooks/durabletask/*` and nothing else. */
    durableExtension: string;
}

export interface HttpFrontDoorOptions {
    functions: RegisteredFunction[];
    /** `api` unless host.json's extensions.http.routePrefix says otherwise ('' for none). */
    routePrefix: string;
    keys: HostKeys;
    /** Runs one invocation (the host tracks it for draining and calls the handler). */
    invoke(fn: RegisteredFunction, request: HttpRequest): Promise<unknown>;
    /** False while the host is stopping: new requests get 503. */
    accepting(): boolean;
    /** Where the durable runtime serves its HTTP API; `/runtime/webhooks/durabletask/...` is forwarded there. */
    durableOrigin?(): string | undefined;
    log(message: string): void;
    maxRequestBytes?: number;
}

const DURABLE_WEBHOOKS = `${DURABLE_WEBHOOK_PATH}/`;
const HOP_BY_HOP = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

/** Azure Functions rejects request bodies over 100 MB. */
const DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024;

/** Builds the routing table, most specific template first. */
export function httpRoutes(functions: RegisteredFunction[], routePrefix: string): HttpRoute[] {
    const prefix = routePrefix.replace(/^\/+|\/+$/g, '');
    const routes = functions.map((fn): HttpRoute => {
        const route = typeof fn.trigger.route === 'string' && fn.trigger.route !== '' ? fn.trigger.route : fn.name;
        const methods = Array.isArray(fn.trigger.methods)
            ? (fn.trigger.methods as string[]).map((m) => m.toUpperCase())
            : ['GET', 'POST'];
        const level = fn.trigger.authLevel;
        const authLevel = level === 'function' || level === 'admin' ? level : 'anonymous';
        const template = parseRouteTemplate(route);
        const displayPath = '/' + [prefix, route.replace(/^\/+/, '')].filter((p) => p !== '').join('/');
        return { fn, template, methods, authLevel, displayPath };
    });
    return routes.sort((a, b) => compareRoutePrecedence(a.template, b.template));
}

function keyMatches(expected: string, given: string | undefined): boolean {
    if (!given) return false;
    const a = Buffer.from(expected);
    const b = Buffer.from(given);
    return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The key a request presents. One rule, the Functions host's (AuthenticationLevelHandler): the
 * `x-functions-key` header when the request has one, otherwise `?code=`. A request with both is judged by the
 * header alone, so a wrong header is refused whatever `code` says.
 */
export function presentedKey(headers: IncomingMessage['headers'], url: URL): string | undefined {
    const header = headers['x-functions-key'];
    if (header !== undefined) return (Array.isArray(header) ? header[0] : header) || undefined;
    return url.searchParams.get('code') ?? undefined;
}

/** Which keys open what: the master key opens everything, each other key only its own level. */
export function keyAllows(keys: HostKeys, given: string | undefined, level: 'function' | 'admin' | 'durable'): boolean {
    if (keyMatches(keys.master, given)) return true;
    if (level === 'function') return keyMatches(keys.function, given);
    if (level === 'durable') return keyMatches(keys.durableExtension, given);
    return false;
}

const KEY_HINT: Record<'function' | 'admin' | 'durable', string> = {
    function: 'the function key (or the master key)',
    admin: 'the master key',
    durable: 'the durabletask_extension system key (or the master key)',
};

function refuseKey(res: ServerResponse, level: 'function' | 'admin' | 'durable', given: string | undefined): void {
    const what = given ? 'The key given does not open this route' : 'This route needs a key';
    send(res, 401, {
        error: {
            code: 'UNAUTHORIZED',
            message: `${what}: send ${KEY_HINT[level]} as the x-functions-key header or ?code= (the header wins when both are given).`,
        },
    });
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        req.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > limit) {
                // Stop reading; the 413 goes out with `connection: close`, which ends the socket.
                req.removeAllListeners('data');
                req.pause();
                reject(new RequestTooLarge(limit));
                return;
            }
            chunks.push(chunk);
        });
        req.on('end', () => resolve(Buffer.concat(chunks)));
        req.on('error', reject);
    });
}

class RequestTooLarge extends Error {
    constructor(readonly limit: number) {
        super(`The request body is larger than ${limit} bytes, the most the Functions platform accepts.`);
    }
}

function sendTooLarge(res: ServerResponse, err: RequestTooLarge): void {
    send(
        res,
        413,
        { error: { code: 'REQUEST_TOO_LARGE', message: err.message, limitBytes: err.limit } },
        { connection: 'close' },
    );
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    res.writeHead(status, payload === undefined ? headers : { 'content-type': 'application/json', ...headers });
    res.end(payload);
}

/**
 * Serves the app's HTTP functions the way `func start` does: `/{routePrefix}/{route}`, route values into
 * `request.params`, methods checked, and `authLevel: 'function' | 'admin'` checked against the local key
 * (`?code=` or the `x-functions-key` header).
 */
export class HttpFrontDoor {
    readonly routes: HttpRoute[];
    private readonly server: Server;
    private readonly prefixSegments: string[];
    private readonly active = new Set<Promise<void>>();

    constructor(private readonly options: HttpFrontDoorOptions) {
        this.routes = httpRoutes(options.functions, options.routePrefix);
        this.prefixSegments = options.routePrefix.split('/').filter((s) => s !== '');
        this.server = createServer((req, res) => {
            const handling = this.handle(req, res).catch((err: unknown) => {
                options.log(`HTTP front door failed on ${req.method} ${req.url}: ${ensureErrorType(err).message}`);
                send(res, 500);
            });
            this.active.add(handling);
            void handling.finally(() => this.active.delete(handling));
        });
        // Keep-alive sockets would hold `close()` open until they time out.
        this.server.keepAliveTimeout = 2000;
    }

    /** Listens and resolves with the base URL, e.g. `http://127.0.0.1:7071`. */
    async listen(port: number, host: string): Promise<string> {
        await new Promise<void>((resolve, reject) => {
            this.server.once('error', reject);
            this.server.listen(port, host, () => {
                this.server.off('error', reject);
                resolve();
            });
        });
        const address = this.server.address() as AddressInfo;
        const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
        return `http://${shownHost}:${address.port}`;
    }

    /**
     * Stops accepting connections and closes idle ones. Requests in flight go on; the returned promise
     * resolves once every connection has ended (see `finish`).
     */
    stopListening(): Promise<void> {
        const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
        this.server.closeIdleConnections();
        return closed;
    }

    /** Waits up to `timeoutMs` for responses still being written, then closes every connection left. */
    async finish(timeoutMs: number): Promise<void> {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
            Promise.allSettled([...this.active]),
            new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
        ]);
        clearTimeout(timer);
        this.server.closeAllConnections();
    }

    private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
        if (!this.options.accepting()) {
            send(
                res,
                503,
                { error: { code: 'HOST_STOPPING', message: 'The host is stopping.' } },
                { connection: 'close' },
            );
            return;
        }
        const durableOrigin = this.options.durableOrigin?.();
        if (url.pathname.startsWith(DURABLE_WEBHOOKS)) {
            const given = presentedKey(req.headers, url);
            if (!keyAllows(this.options.keys, given, 'durable')) {
                refuseKey(res, 'durable', given);
                return;
            }
            if (durableOrigin) {
                await this.forward(durableOrigin, req, res, url);
                return;
            }
        }
        const segments = url.pathname.split('/').filter((s) => s !== '');
        const hasPrefix = this.prefixSegments.every((p, i) => segments[i]?.toLowerCase() === p.toLowerCase());
        if (!hasPrefix) {
            send(res, 404, { error: { code: 'NOT_FOUND', message: `No function serves ${url.pathname}.` } });
            return;
        }
        const routePath = segments.slice(this.prefixSegments.length).join('/');
        const method = (req.method ?? 'GET').toUpperCase();
        let matchedPath = false;
        for (const route of this.routes) {
            const params = route.template.match(routePath);
            if (!params) continue;
            matchedPath = true;
            if (!route.methods.includes(method)) continue;
            if (route.authLevel !== 'anonymous') {
                const given = presentedKey(req.headers, url);
                if (!keyAllows(this.options.keys, given, route.authLevel)) {
                    refuseKey(res, route.authLevel, given);
                    return;
                }
            }
            await this.invoke(route, params, req, res, url, method);
            return;
        }
        if (matchedPath) {
            const allowed = [
                ...new Set(this.routes.filter((r) => r.template.match(routePath)).flatMap((r) => r.methods)),
            ];
            send(
                res,
                405,
                { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed here.` } },
                { allow: allowed.join(', ') },
            );
            return;
        }
        send(res, 404, { error: { code: 'NOT_FOUND', message: `No function serves ${url.pathname}.` } });
    }

    /** Relays a durable webhook call (status query, raise event, terminate) to the durable runtime. */
    private async forward(origin: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
        let body: Buffer;
        try {
            body = await readBody(req, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
        } catch (err) {
            if (err instanceof RequestTooLarge) sendTooLarge(res, err);
            else throw err;
            return;
        }
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) {
            if (value !== undefined && !HOP_BY_HOP.has(name))
                headers[name] = Array.isArray(value) ? value.join(', ') : value;
        }
        const method = req.method ?? 'GET';
        const upstream = await fetch(`${origin}${url.pathname}${url.search}`, {
            method,
            headers,
            body: method === 'GET' || method === 'HEAD' || body.length === 0 ? undefined : body,
            redirect: 'manual',
            signal: AbortSignal.timeout(60_000),
        });
        // Links in the reply (Location, the management URLs of a start) go through this door, with the key.
        const face = {
            internalOrigin: origin,
            publicOrigin: `http://${req.headers.host ?? 'localhost'}`,
            key: this.options.keys.durableExtension,
        };
        const replyHeaders: Record<string, string> = {};
        for (const [name, value] of upstream.headers.entries()) {
            if (!HOP_BY_HOP.has(name) && name !== 'content-length' && name !== 'content-encoding') {
                replyHeaders[name] = publicWebhookText(value, face);
            }
        }
        const text = publicWebhookText(Buffer.from(await upstream.arrayBuffer()).toString('utf8'), face);
        res.writeHead(upstream.status, replyHeaders);
        res.end(text);
    }

    private async invoke(
        route: HttpRoute,
        params: Record<string, string>,
        req: IncomingMessage,
        res: ServerResponse,
        url: URL,
        method: string,
    ): Promise<void> {
        let body: Buffer;
        try {
            body = await readBody(req, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
        } catch (err) {
            if (err instanceof RequestTooLarge) sendTooLarge(res, err);
            else throw err;
            return;
        }
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) {
            if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
        }
        const request = new HttpRequest({
            method,
            url: url.toString(),
            headers,
            params,
            body: body.length > 0 ? { bytes: body } : undefined,
        });
        let result: unknown;
        try {
            result = await this.options.invoke(route.fn, request);
        } catch (err) {
            this.options.log(`${route.fn.name} failed: ${ensureErrorType(err).stack ?? String(err)}`);
            send(res, 500);
            return;
        }
        await writeResponse(res, result, this.options.accepting());
    }
}

async function writeResponse(res: ServerResponse, result: unknown, keepAlive: boolean): Promise<void> {
    if (result === undefined || result === null) {
        send(res, 204);
        return;
    }
    if (typeof result !== 'object') {
        throw new Error('An HTTP function must return an HttpResponseInit or HttpResponse object.');
    }
    const response = result instanceof HttpResponse ? result : new HttpResponse(result);
    const headers: Record<string, string> = {};
    for (const [name, value] of response.headers.entries()) headers[name] = value;
    if (!keepAlive) headers.connection = 'close';
    const bytes = Buffer.from(await response.arrayBuffer());
    res.writeHead(response.status, headers);
    res.end(bytes);
}
