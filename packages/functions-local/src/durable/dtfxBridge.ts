import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { invokeFunction } from '../host/invoke';
import { durableClientBindings, type DurableClientSource } from './clientBinding';
import type { FunctionRegistry, RegisteredFunction } from '../host/registry';

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const WEBHOOK_PREFIX = '/runtime/webhooks/durabletask/';
const RPC_PREFIX = '/durabletask/';

/** What the .NET host asks for: the function names to declare, then calls of them. */
export interface BridgeFunctions {
    orchestrators: string[];
    activities: string[];
}

/**
 * The Node end of the loopback bridge to the .NET host: the extension's out-of-process calls arrive here and
 * are answered by the app's registered handlers, invoked as the Functions worker would invoke them
 * (`invokeFunction`). Orchestrators get the orchestration context JSON and return the orchestrator state the
 * extension replays; activities get their input and return their result. A handler's failure is sent back as
 * `{error: {message, stack}}` (for an orchestrator, the message carries the state after `$OutOfProcData$:`).
 * Listens on 127.0.0.1 only, on a port the OS picks, and answers only requests with its bearer token.
 */
export class DtfxBridge {
    readonly token = randomBytes(24).toString('base64url');
    private server: http.Server | undefined;
    /** Calls being served now, by kind; tests and diagnostics read them. */
    readonly inFlight = { orchestrator: 0, activity: 0 };
    /** Orchestrator episodes served, by instance id. */
    readonly episodes = new Map<string, number>();

    /** The extension's local RPC endpoint (`http://127.0.0.1:PORT`), once the host runs. */
    rpcOrigin: string | undefined;

    constructor(
        private readonly registry: FunctionRegistry,
        private readonly client: DurableClientSource,
        private readonly log: (line: string) => void,
    ) {}

    functions(): BridgeFunctions {
        return {
            orchestrators: this.registry.byTriggerType('orchestrationTrigger').map((f) => f.name),
            activities: this.registry.byTriggerType('activityTrigger').map((f) => f.name),
        };
    }

    async listen(): Promise<string> {
        const server = http.createServer((req, res) => void this.serve(req, res));
        this.server = server;
        await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, '127.0.0.1', () => resolve());
        });
        const { port } = server.address() as AddressInfo;
        return `http://127.0.0.1:${port}/`;
    }

    async close(): Promise<void> {
        const server = this.server;
        if (!server) return;
        this.server = undefined;
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
    }

    private authorized(req: http.IncomingMessage): boolean {
        const expected = Buffer.from(`Bearer ${this.token}`);
        const given = Buffer.from(req.headers.authorization ?? '');
        return given.length === expected.length && timingSafeEqual(given, expected);
    }

    private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        const reply = (status: number, body: unknown): void => {
            const text = JSON.stringify(body);
            res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
            res.end(text);
        };
        try {
            const url = new URL(req.url ?? '/', 'http://127.0.0.1');
            if (url.pathname.startsWith(WEBHOOK_PREFIX)) return await this.forwardWebhook(req, res, url);
            if (!this.authorized(req)) return reply(401, { message: 'bridge token required' });
            if (req.method === 'GET' && url.pathname === '/functions') return reply(200, this.functions());
            const match = /^\/(orchestrator|activity)\/([^/]+)$/.exec(url.pathname);
            if (req.method !== 'POST' || !match)
                return reply(404, { message: `no route ${req.method} ${url.pathname}` });
            const kind = match[1] as 'orchestrator' | 'activity';
            const fn = this.registered(kind, decodeURIComponent(match[2]!));
            const body = await readBody(req);
            const parsed: unknown = body === '' ? undefined : JSON.parse(body);
            // The worker parses a string trigger value once more when it is JSON (`fromRpcTypedData`); durable-
            // functions sends string activity inputs JSON-encoded, so this is how they arrive as the string.
            const input = typeof parsed === 'string' ? parseIfJson(parsed) : parsed;
            if (kind === 'orchestrator') {
                const instanceId = String((input as { instanceId?: unknown }).instanceId);
                this.episodes.set(instanceId, (this.episodes.get(instanceId) ?? 0) + 1);
            }
            if (process.env.HVR_DTFX_TRACE && kind === 'orchestrator') {
                const ctx = input as {
                    input?: unknown;
                    history?: { EventType: number; Name?: string; IsPlayed?: boolean }[];
                };
                this.log(
                    `TRACE ${fn.name} input=${JSON.stringify(ctx.input)} history=${JSON.stringify(ctx.history?.map((e) => `${e.EventType}${e.Name ? ':' + e.Name : ''}${e.IsPlayed ? '*' : ''}`))}`,
                );
            }
            this.inFlight[kind]++;
            try {
                const { result } = await invokeFunction(fn, input, {
                    bindings: [durableClientBindings(this.client)],
                    log: (level, message) => this.log(`[${fn.name}] ${level}: ${message}`),
                });
                if (process.env.HVR_DTFX_TRACE && kind === 'orchestrator')
                    this.log(`TRACE result=${JSON.stringify(result).slice(0, 600)}`);
                reply(200, { result: result ?? null });
            } catch (err) {
                const error = err instanceof Error ? err : new Error(String(err));
                reply(200, { error: { message: error.message, stack: error.stack ?? '' } });
            } finally {
                this.inFlight[kind]--;
            }
        } catch (err) {
            reply(500, { message: (err as Error).message });
        }
    }

    /**
     * The public webhook routes (`/runtime/webhooks/durabletask/...`, what the status links name) answered by the
     * extension's local RPC endpoint, which serves the same API under `/durabletask/`. Outside the Functions host
     * nothing else serves them; the local front door forwards them here after its key check.
     */
    private async forwardWebhook(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
        if (!this.rpcOrigin) {
            res.writeHead(503).end();
            return;
        }
        const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
        const target = `${this.rpcOrigin}${RPC_PREFIX}${url.pathname.slice(WEBHOOK_PREFIX.length)}${url.search}`;
        const headers: Record<string, string> = {};
        const contentType = req.headers['content-type'];
        if (contentType) headers['content-type'] = contentType;
        const upstream = await fetch(target, {
            method: req.method ?? 'GET',
            headers,
            body: body === undefined || body === '' ? undefined : body,
            redirect: 'manual',
            signal: AbortSignal.timeout(60_000),
        });
        const replyHeaders: Record<string, string> = {};
        for (const name of ['content-type', 'location', 'retry-after']) {
            const value = upstream.headers.get(name);
            if (value) replyHeaders[name] = value;
        }
        res.writeHead(upstream.status, replyHeaders);
        res.end(Buffer.from(await upstream.arrayBuffer()));
    }

    private registered(kind: 'orchestrator' | 'activity', name: string): RegisteredFunction {
        const type = kind === 'orchestrator' ? 'orchestrationTrigger' : 'activityTrigger';
        const fn = this.registry.get(name);
        if (fn.trigger.type.toLowerCase() !== type.toLowerCase()) {
            throw new Error(`Function "${name}" is not an ${kind} (its trigger is ${fn.trigger.type})`);
        }
        return fn;
    }
}

async function readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) throw new Error(`bridge request over ${MAX_BODY_BYTES} bytes`);
        chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
}

function parseIfJson(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}
