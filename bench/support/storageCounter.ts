import {
    Agent,
    ClientRequest,
    createServer,
    request as httpRequest,
    IncomingMessage,
    Server,
    ServerResponse,
} from 'node:http';
import { AddressInfo } from 'node:net';
import { AZURITE_ACCOUNT, azuriteConnectionString } from '../../packages/functions-local/src';
import {
    BatchOperationCounter,
    classifyStorageRequest,
    STORAGE_SERVICES,
    type StorageOpKind,
    type StorageRequestShape,
    type StorageService,
} from './storageOps';

/**
 * A counting HTTP proxy in front of Azurite's blob, queue and table endpoints, for benchmarks that price what
 * the pipeline does (bench/cost). Every request is forwarded unchanged (method, path, query, headers, body
 * streamed both ways over kept-alive sockets) and counted by REST operation kind (bench/support/storageOps.ts),
 * with its body bytes in and out. Each named caller gets its own three ports and connection string, so traffic
 * from the app and from the Durable engine (which takes its own `AzureWebJobsStorage`) is told apart; requests are
 * also counted by the User-Agent's first product token, which names the SDK (`azsdk-js-azure-storage-blob`,
 * `azsdk-net-Storage.Queues`, ...).
 *
 * Usage:
 * ```ts
 * const azurite = await startAzurite();
 * const counter = await startStorageCounter(azurite, { callers: ['app', 'durable'] });
 * // give counter.connectionString('app') to the app, counter.connectionString('durable') to the engine
 * counter.reset(); ...; const c = counter.counts('durable'); // c.byKind['queue.getMessages']?.requests
 * await counter.close();
 * ```
 */

/** Azurite's endpoints as startAzurite() returns them (URLs ending in the account), or just its three ports. */
export type StorageCounterTarget =
    { blobUrl: string; queueUrl: string; tableUrl: string } | { blob: number; queue: number; table: number };

export interface StorageCounterOptions {
    /** Names of the callers, each given its own ports. Default: one caller, `default`. */
    callers?: string[];
    /**
     * Names requests to keep out of the totals (still forwarded), e.g. what only a local stand-in does: the local
     * host's Event Grid emulation listing a container. They are counted under `setAside[name]` instead.
     */
    setAside?: (request: StorageRequestShape & { kind: StorageOpKind; caller: string }) => string | undefined;
    /** An upstream request idle this long fails with 504. Default 5 minutes. */
    upstreamIdleTimeoutMs?: number;
}

export interface KindCount {
    /** HTTP requests (billing's transactions: a table batch is one). */
    requests: number;
    /** Operations: a table batch counts each of its sub-operations, every other request counts one. */
    operations: number;
    /** Requests answered with a status of 400 or more (or that failed in the proxy). */
    failed: number;
    /** Request body bytes (client to storage). */
    bytesIn: number;
    /** Response body bytes (storage to client). */
    bytesOut: number;
}

export interface StorageCounts extends KindCount {
    byKind: Partial<Record<StorageOpKind, KindCount>>;
    byService: Record<StorageService, KindCount>;
    /** Requests by the User-Agent's first product token (the SDK that sent them). */
    byAgent: Record<string, number>;
    /** Requests the `setAside` option named, by name; not in any other figure. */
    setAside: Record<string, KindCount>;
}

export interface CallerEndpoints {
    blobUrl: string;
    queueUrl: string;
    tableUrl: string;
    /** The connection string that sends this caller's traffic through the counter. */
    connectionString: string;
    ports: Record<StorageService, number>;
}

export interface StorageCounter {
    /** The callers' names, in the order given. */
    callers: string[];
    endpoints(caller?: string): CallerEndpoints;
    connectionString(caller?: string): string;
    /** The counts since start or the last reset: of one caller, or all callers summed. A copy. */
    counts(caller?: string): StorageCounts;
    /** Counts of every caller by name. */
    countsByCaller(): Record<string, StorageCounts>;
    reset(): void;
    close(): Promise<void>;
}

function emptyKind(): KindCount {
    return { requests: 0, operations: 0, failed: 0, bytesIn: 0, bytesOut: 0 };
}

function emptyCounts(): StorageCounts {
    return {
        ...emptyKind(),
        byKind: {},
        byService: { blob: emptyKind(), queue: emptyKind(), table: emptyKind() },
        byAgent: {},
        setAside: {},
    };
}

function addKind(into: KindCount, from: KindCount): void {
    into.requests += from.requests;
    into.operations += from.operations;
    into.failed += from.failed;
    into.bytesIn += from.bytesIn;
    into.bytesOut += from.bytesOut;
}

/** Sums counts (of several callers, or several runs). */
export function sumStorageCounts(all: StorageCounts[]): StorageCounts {
    const out = emptyCounts();
    for (const c of all) {
        addKind(out, c);
        for (const [kind, k] of Object.entries(c.byKind) as [StorageOpKind, KindCount][]) {
            addKind((out.byKind[kind] ??= emptyKind()), k);
        }
        for (const s of STORAGE_SERVICES) addKind(out.byService[s], c.byService[s]);
        for (const [agent, n] of Object.entries(c.byAgent)) out.byAgent[agent] = (out.byAgent[agent] ?? 0) + n;
        for (const [name, k] of Object.entries(c.setAside)) addKind((out.setAside[name] ??= emptyKind()), k);
    }
    return out;
}

function upstreamOf(target: StorageCounterTarget): Record<StorageService, { host: string; port: number }> {
    const parse = (u: string): { host: string; port: number } => {
        const url = new URL(u);
        return { host: url.hostname, port: Number(url.port || 80) };
    };
    if ('blobUrl' in target) {
        return { blob: parse(target.blobUrl), queue: parse(target.queueUrl), table: parse(target.tableUrl) };
    }
    return {
        blob: { host: '127.0.0.1', port: target.blob },
        queue: { host: '127.0.0.1', port: target.queue },
        table: { host: '127.0.0.1', port: target.table },
    };
}

function agentToken(ua: string | undefined): string {
    if (!ua) return 'none';
    const first = ua.trim().split(/\s+/)[0] ?? '';
    return first.split('/')[0] || 'none';
}

/** One caller's counts; a request is committed once its response has ended (or failed). */
class Tally {
    counts = emptyCounts();

    commit(service: StorageService, kind: StorageOpKind, agent: string, one: KindCount, aside?: string): void {
        if (aside !== undefined) {
            addKind((this.counts.setAside[aside] ??= emptyKind()), one);
            return;
        }
        addKind(this.counts, one);
        addKind(this.counts.byService[service], one);
        addKind((this.counts.byKind[kind] ??= emptyKind()), one);
        this.counts.byAgent[agent] = (this.counts.byAgent[agent] ?? 0) + 1;
    }
}

/**
 * Starts the counter: three listeners per caller on 127.0.0.1, ports the OS picks. Resolves when all listen.
 */
export async function startStorageCounter(
    target: StorageCounterTarget,
    options: StorageCounterOptions = {},
): Promise<StorageCounter> {
    const callers = options.callers ?? ['default'];
    if (callers.length === 0 || new Set(callers).size !== callers.length) {
        throw new Error(`startStorageCounter: callers must be distinct names, got ${JSON.stringify(callers)}`);
    }
    const upstream = upstreamOf(target);
    const idleMs = options.upstreamIdleTimeoutMs ?? 5 * 60_000;
    // Idle upstream sockets are dropped after 1 s, well before Azurite's own 5 s keep-alive timeout closes them
    // under a request the proxy is about to send.
    const agent = new Agent({ keepAlive: true, maxSockets: Infinity, timeout: 1000 });
    const tallies = new Map<string, Tally>(callers.map((c) => [c, new Tally()]));
    const servers: Server[] = [];
    const endpoints = new Map<string, CallerEndpoints>();

    const handle = (caller: string, service: StorageService, req: IncomingMessage, res: ServerResponse): void => {
        const tally = tallies.get(caller)!;
        const url = req.url ?? '/';
        const shape: StorageRequestShape = { service, method: req.method ?? 'GET', url, headers: req.headers };
        const kind = classifyStorageRequest(shape);
        const aside = options.setAside?.({ ...shape, kind, caller });
        const agentName = agentToken(req.headers['user-agent']);
        const one: KindCount = { ...emptyKind(), requests: 1 };
        const batch = kind === 'table.batch' ? new BatchOperationCounter() : undefined;
        let committed = false;
        const commit = (): void => {
            if (committed) return;
            committed = true;
            one.operations = batch ? Math.max(1, batch.finish()) : 1;
            tally.commit(service, kind, agentName, one, aside);
        };
        // A request without a body can be sent again if a kept-alive socket turns out closed under it (Azurite
        // closes idle ones after 5 s; a loaded machine can run the agent's own earlier drop late).
        const bodyless =
            req.headers['content-length'] === '0' ||
            (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined);
        let current: ClientRequest | undefined;
        const send = (attempt: number): void => {
            const up = httpRequest(
                {
                    host: upstream[service].host,
                    port: upstream[service].port,
                    method: req.method,
                    path: url,
                    headers: req.headers,
                    agent,
                },
                (upRes) => {
                    if ((upRes.statusCode ?? 0) >= 400) one.failed = 1;
                    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders);
                    upRes.on('data', (chunk: Buffer) => {
                        one.bytesOut += chunk.length;
                    });
                    upRes.on('end', commit);
                    upRes.on('error', () => {
                        one.failed = 1;
                        commit();
                        res.destroy();
                    });
                    upRes.pipe(res);
                },
            );
            current = up;
            up.setTimeout(idleMs, () => up.destroy(new Error(`no answer from storage within ${idleMs} ms`)));
            up.on('error', (err) => {
                if (attempt === 0 && bodyless && up.reusedSocket && !res.headersSent && !res.destroyed) {
                    send(1);
                    return;
                }
                one.failed = 1;
                commit();
                if (!res.headersSent) {
                    res.writeHead(err.message.startsWith('no answer') ? 504 : 502, { 'content-type': 'text/plain' });
                    res.end(`storage counter: ${service} upstream failed: ${err.message}`);
                } else {
                    res.destroy();
                }
            });
            if (attempt === 0) req.pipe(up);
            else up.end();
        };
        req.on('data', (chunk: Buffer) => {
            one.bytesIn += chunk.length;
            batch?.push(chunk);
        });
        req.on('aborted', () => current?.destroy());
        res.on('close', () => {
            if (!res.writableFinished) current?.destroy();
        });
        send(0);
    };

    try {
        for (const caller of callers) {
            const ports: Partial<Record<StorageService, number>> = {};
            for (const service of STORAGE_SERVICES) {
                const server = createServer((req, res) => handle(caller, service, req, res));
                server.keepAliveTimeout = 5000;
                servers.push(server);
                await new Promise<void>((resolve, reject) => {
                    server.once('error', reject);
                    server.listen(0, '127.0.0.1', () => {
                        server.off('error', reject);
                        resolve();
                    });
                });
                ports[service] = (server.address() as AddressInfo).port;
            }
            const base = (s: StorageService): string => `http://127.0.0.1:${ports[s]}/${AZURITE_ACCOUNT}`;
            endpoints.set(caller, {
                blobUrl: base('blob'),
                queueUrl: base('queue'),
                tableUrl: base('table'),
                connectionString: azuriteConnectionString(base('blob'), base('queue'), base('table')),
                ports: ports as Record<StorageService, number>,
            });
        }
    } catch (err) {
        await closeAll(servers, agent);
        throw err;
    }

    const callerOrThrow = (caller: string | undefined): string => {
        const name = caller ?? (callers.length === 1 ? callers[0]! : undefined);
        if (name === undefined || !tallies.has(name)) {
            throw new Error(`storage counter: no caller ${JSON.stringify(caller)} (have ${callers.join(', ')})`);
        }
        return name;
    };
    const copy = (c: StorageCounts): StorageCounts => sumStorageCounts([c]);

    return {
        callers: [...callers],
        endpoints: (caller) => endpoints.get(callerOrThrow(caller))!,
        connectionString: (caller) => endpoints.get(callerOrThrow(caller))!.connectionString,
        counts: (caller) =>
            caller === undefined
                ? sumStorageCounts([...tallies.values()].map((t) => t.counts))
                : copy(tallies.get(callerOrThrow(caller))!.counts),
        countsByCaller: () => Object.fromEntries([...tallies].map(([name, t]) => [name, copy(t.counts)])),
        reset: () => {
            for (const t of tallies.values()) t.counts = emptyCounts();
        },
        close: () => closeAll(servers, agent),
    };
}

async function closeAll(servers: Server[], agent: Agent): Promise<void> {
    await Promise.all(
        servers.map(
            (s) =>
                new Promise<void>((resolve) => {
                    if (!s.listening) return resolve();
                    s.close(() => resolve());
                    s.closeAllConnections();
                }),
        ),
    );
    agent.destroy();
}
