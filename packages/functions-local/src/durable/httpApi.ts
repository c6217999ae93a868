import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LocalPlatformError } from '../errors';
import type { HistoryEventRecord } from './history';
import type { InstanceStatus, RuntimeStatus } from './store';

/** What the durable HTTP API asks of the engine behind it (the embedded runtime implements it). */
export interface DurableHttpBackend {
    startNew(orchestrationName: string, options: { instanceId?: string; input?: unknown }): Promise<string>;
    raiseEvent(instanceId: string, eventName: string, data?: unknown): Promise<void>;
    getStatus(instanceId: string): Promise<InstanceStatus | undefined>;
    getHistory(instanceId: string): Promise<HistoryEventRecord[]>;
    listInstances(filter: { runtimeStatus?: RuntimeStatus[]; prefix?: string }): Promise<InstanceStatus[]>;
    terminate(instanceId: string, reason: string): Promise<void>;
    purge(instanceId: string): Promise<void>;
}

const RPC_PREFIX = '/durabletask/';
const WEBHOOK_PREFIX = '/runtime/webhooks/durabletask/';
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const RUNTIME_STATUSES: ReadonlySet<string> = new Set([
    'Pending',
    'Running',
    'Completed',
    'Failed',
    'Terminated',
    'ContinuedAsNew',
]);

interface Reply {
    status: number;
    body?: unknown;
    headers?: Record<string, string>;
}

function statusCodeFor(err: unknown): number {
    if (!(err instanceof LocalPlatformError)) return 500;
    switch (err.code) {
        case 'NOT_FOUND':
            return 404;
        case 'CONFLICT':
            return 409;
        case 'VALIDATION_FAILED':
            return 400;
        default:
            return 500;
    }
}

function parseBody(text: string, what: string): unknown {
    if (text.trim() === '') return undefined;
    try {
        return JSON.parse(text);
    } catch (err) {
        throw new LocalPlatformError('VALIDATION_FAILED', `${what} is not JSON: ${(err as Error).message}`);
    }
}

/**
 * The part of the Durable Functions extension's HTTP API that durable-functions' DurableClient calls — the
 * RPC routes under `/durabletask/` and the public webhook routes under `/runtime/webhooks/durabletask/` —
 * served on a loopback port and answered by a `DurableHttpBackend`.
 */
export class DurableHttpApi {
    private server: http.Server | undefined;
    private listening: Promise<string> | undefined;
    origin: string | undefined;

    constructor(
        private readonly runtime: DurableHttpBackend,
        private readonly taskHub: string,
        private readonly log: (line: string) => void,
    ) {}

    /** The durableClient binding value (OrchestrationClientInputData) pointing at this server. */
    async clientBinding(): Promise<unknown> {
        const origin = await this.listen();
        const base = `${origin}${WEBHOOK_PREFIX.slice(0, -1)}`;
        const query = `taskHub=${encodeURIComponent(this.taskHub)}&connection=Storage&code=local`;
        const instance = `${base}/instances/INSTANCEID`;
        return {
            taskHubName: this.taskHub,
            creationUrls: {
                createNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?code=local`,
                createAndWaitOnNewInstancePostUri: `${base}/orchestrators/{functionName}[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&code=local`,
            },
            managementUrls: {
                id: 'INSTANCEID',
                statusQueryGetUri: `${instance}?${query}`,
                sendEventPostUri: `${instance}/raiseEvent/{eventName}?${query}`,
                terminatePostUri: `${instance}/terminate?reason={text}&${query}`,
                rewindPostUri: `${instance}/rewind?reason={text}&${query}`,
                purgeHistoryDeleteUri: `${instance}?${query}`,
                restartPostUri: `${instance}/restart?${query}`,
                suspendPostUri: `${instance}/suspend?reason={text}&${query}`,
                resumePostUri: `${instance}/resume?reason={text}&${query}`,
            },
            baseUrl: base,
            requiredQueryStringParameters: query,
            rpcBaseUrl: `${origin}${RPC_PREFIX}`,
        };
    }

    async close(): Promise<void> {
        const server = this.server;
        this.server = undefined;
        if (!server) return;
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
    }

    private listen(): Promise<string> {
        if (!this.listening) {
            this.listening = new Promise<string>((resolve, reject) => {
                const server = http.createServer((req, res) => {
                    this.handle(req)
                        .catch((err: unknown): Reply => ({
                            status: statusCodeFor(err),
                            body: { message: err instanceof Error ? err.message : String(err) },
                        }))
                        .then((reply) => {
                            const text = reply.body === undefined ? '' : JSON.stringify(reply.body);
                            res.writeHead(reply.status, {
                                ...(text ? { 'Content-Type': 'application/json; charset=utf-8' } : {}),
                                ...reply.headers,
                            });
                            res.end(text);
                        })
                        .catch((err: unknown) => this.log(`durable HTTP API reply failed: ${String(err)}`));
                });
                server.keepAliveTimeout = 1000;
                server.once('error', reject);
                server.listen(0, '127.0.0.1', () => {
                    const { port } = server.address() as AddressInfo;
                    this.server = server;
                    this.origin = `http://127.0.0.1:${port}`;
                    resolve(this.origin);
                });
            });
        }
        return this.listening;
    }

    private async readBody(req: http.IncomingMessage): Promise<string> {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of req as AsyncIterable<Buffer>) {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
                throw new LocalPlatformError('VALIDATION_FAILED', `Request body is over ${MAX_BODY_BYTES} bytes`);
            }
            chunks.push(chunk);
        }
        return Buffer.concat(chunks).toString('utf8');
    }

    private async handle(req: http.IncomingMessage): Promise<Reply> {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const prefix = [RPC_PREFIX, WEBHOOK_PREFIX].find((p) => url.pathname.startsWith(p));
        if (!prefix) return { status: 404, body: { message: `No route ${url.pathname}` } };
        const segments = url.pathname
            .slice(prefix.length)
            .split('/')
            .map((s) => decodeURIComponent(s));
        const method = (req.method ?? 'GET').toUpperCase();
        const body = await this.readBody(req);
        const [resource, first, action, extra] = segments;

        if (resource === 'orchestrators' && first && method === 'POST') {
            return this.start(first, action || undefined, body, url);
        }
        if (resource !== 'instances') {
            return { status: 501, body: { message: `The local durable runtime does not serve ${url.pathname}` } };
        }
        if (!first) {
            if (method === 'GET') return this.list(url);
            if (method === 'DELETE') return this.purgeBy(url);
            return { status: 405, body: { message: `${method} is not allowed on instances/` } };
        }
        const instanceId = first;
        if (!action) {
            if (method === 'GET') return this.status(instanceId, url);
            if (method === 'DELETE') {
                await this.runtime.purge(instanceId);
                return { status: 200, body: { instancesDeleted: 1 } };
            }
        }
        if (action === 'raiseEvent' && extra && method === 'POST') {
            const existing = await this.runtime.getStatus(instanceId);
            if (!existing) return { status: 404, body: { message: `No instance ${instanceId}` } };
            if (['Completed', 'Failed', 'Terminated'].includes(existing.runtimeStatus)) {
                return { status: 410, body: { message: `Instance ${instanceId} is ${existing.runtimeStatus}` } };
            }
            await this.runtime.raiseEvent(instanceId, extra, parseBody(body, 'The event data'));
            return { status: 202 };
        }
        if (action === 'terminate' && method === 'POST') {
            const existing = await this.runtime.getStatus(instanceId);
            if (!existing) return { status: 404, body: { message: `No instance ${instanceId}` } };
            if (['Completed', 'Failed', 'Terminated'].includes(existing.runtimeStatus)) {
                return { status: 410, body: { message: `Instance ${instanceId} is ${existing.runtimeStatus}` } };
            }
            await this.runtime.terminate(instanceId, url.searchParams.get('reason') ?? '');
            return { status: 202 };
        }
        return {
            status: 501,
            body: { message: `The local durable runtime does not support ${method} ${url.pathname}` },
        };
    }

    private async start(name: string, instanceId: string | undefined, body: string, url: URL): Promise<Reply> {
        let id: string;
        try {
            id = await this.runtime.startNew(name, {
                instanceId,
                input: parseBody(body, 'The orchestration input'),
            });
        } catch (err) {
            // The extension answers 400 for an unknown orchestrator rather than 404.
            if (err instanceof LocalPlatformError && err.code === 'NOT_FOUND') {
                return { status: 400, body: { message: err.message } };
            }
            throw err;
        }
        const links = this.managementLinks(id, url);
        return { status: 202, body: links, headers: { Location: links.statusQueryGetUri ?? '' } };
    }

    private managementLinks(instanceId: string, _url: URL): Record<string, string> {
        const origin = this.origin ?? 'http://127.0.0.1';
        const instance = `${origin}${WEBHOOK_PREFIX}instances/${encodeURIComponent(instanceId)}`;
        const query = `taskHub=${encodeURIComponent(this.taskHub)}&connection=Storage&code=local`;
        return {
            id: instanceId,
            statusQueryGetUri: `${instance}?${query}`,
            sendEventPostUri: `${instance}/raiseEvent/{eventName}?${query}`,
            terminatePostUri: `${instance}/terminate?reason={text}&${query}`,
            purgeHistoryDeleteUri: `${instance}?${query}`,
            rewindPostUri: `${instance}/rewind?reason={text}&${query}`,
            restartPostUri: `${instance}/restart?${query}`,
            suspendPostUri: `${instance}/suspend?reason={text}&${query}`,
            resumePostUri: `${instance}/resume?reason={text}&${query}`,
        };
    }

    private statusBody(status: InstanceStatus, url: URL, history?: unknown[]): Record<string, unknown> {
        const showInput = url.searchParams.get('showInput') !== 'false';
        return {
            name: status.name,
            instanceId: status.instanceId,
            runtimeStatus: status.runtimeStatus,
            input: showInput ? (status.input ?? null) : null,
            customStatus: status.customStatus ?? null,
            output: status.output ?? null,
            createdTime: status.createdTime.toISOString(),
            lastUpdatedTime: status.lastUpdatedTime.toISOString(),
            ...(history ? { historyEvents: history } : {}),
        };
    }

    private async status(instanceId: string, url: URL): Promise<Reply> {
        const status = await this.runtime.getStatus(instanceId);
        if (!status) return { status: 404, body: { message: `No instance ${instanceId}` } };
        const history =
            url.searchParams.get('showHistory') === 'true' ? await this.runtime.getHistory(instanceId) : undefined;
        // As the extension's status webhook: 200 done, 202 still going, 400 failed or terminated.
        const code =
            status.runtimeStatus === 'Completed'
                ? 200
                : status.runtimeStatus === 'Failed' || status.runtimeStatus === 'Terminated'
                  ? 400
                  : 202;
        return { status: code, body: this.statusBody(status, url, history) };
    }

    private filterFrom(url: URL): { runtimeStatus?: RuntimeStatus[]; prefix?: string; from?: number; to?: number } {
        const statuses = url.searchParams.get('runtimeStatus');
        const runtimeStatus = statuses
            ? statuses.split(',').map((s) => {
                  const value = s.trim();
                  if (!RUNTIME_STATUSES.has(value)) {
                      throw new LocalPlatformError('VALIDATION_FAILED', `Unknown runtimeStatus "${value}"`);
                  }
                  return value as RuntimeStatus;
              })
            : undefined;
        const time = (name: string) => {
            const text = url.searchParams.get(name);
            if (!text) return undefined;
            const ms = Date.parse(text);
            if (Number.isNaN(ms)) throw new LocalPlatformError('VALIDATION_FAILED', `${name} "${text}" is not a date`);
            return ms;
        };
        return {
            runtimeStatus,
            prefix: url.searchParams.get('instanceIdPrefix') ?? undefined,
            from: time('createdTimeFrom'),
            to: time('createdTimeTo'),
        };
    }

    private async matching(url: URL): Promise<InstanceStatus[]> {
        const filter = this.filterFrom(url);
        const all = await this.runtime.listInstances({ runtimeStatus: filter.runtimeStatus, prefix: filter.prefix });
        return all.filter(
            (s) =>
                (filter.from === undefined || s.createdTime.getTime() >= filter.from) &&
                (filter.to === undefined || s.createdTime.getTime() <= filter.to),
        );
    }

    private async list(url: URL): Promise<Reply> {
        const found = await this.matching(url);
        return { status: 200, body: found.map((s) => this.statusBody(s, url)) };
    }

    private async purgeBy(url: URL): Promise<Reply> {
        const found = (await this.matching(url)).filter((s) =>
            ['Completed', 'Failed', 'Terminated'].includes(s.runtimeStatus),
        );
        for (const s of found) await this.runtime.purge(s.instanceId);
        if (found.length === 0) return { status: 404, body: { instancesDeleted: 0 } };
        return { status: 200, body: { instancesDeleted: found.length } };
    }
}
