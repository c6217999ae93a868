import { connect } from 'node:net';
import { LocalPlatformError } from '../errors';
import { HostStorage } from './hostStorage';

/**
 * What `hvr start` checks before it takes any work, so that it either runs whole or exits with one line: the
 * storage answers, the port is free, and the endpoints that check no key stay on loopback.
 */

const PROBE_TIMEOUT_MS = 5000;

/**
 * Internal endpoints (the durable runtime's HTTP API, the real engine's RPC endpoint) check no key: they must be
 * reachable from this machine only, whatever interface the front door listens on.
 */
export function assertLoopback(origin: string | undefined, what: string): void {
    if (origin === undefined) return;
    const host = new URL(origin).hostname;
    if (host !== '127.0.0.1' && host !== '[::1]' && host !== 'localhost') {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `${what} listens on ${origin}; it checks no key and must listen on 127.0.0.1 only.`,
            { origin },
        );
    }
}

function causeOf(err: unknown): string {
    const e = err as { code?: string; message?: string };
    return e.code ?? e.message ?? String(err);
}

/** Resolves once a TCP connection to the URL's host and port is open (then closes it). */
function answers(url: string, timeoutMs: number): Promise<void> {
    const target = new URL(url);
    const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
    return new Promise((resolve, reject) => {
        const socket = connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port, timeout: timeoutMs });
        socket.once('connect', () => {
            socket.destroy();
            resolve();
        });
        socket.once('timeout', () => {
            socket.destroy();
            reject(Object.assign(new Error('timeout'), { code: `no answer in ${timeoutMs} ms` }));
        });
        socket.once('error', reject);
    });
}

/**
 * Each storage service must accept a connection: a refused or silent one (storage down, a wrong endpoint) means
 * nothing else is worth starting. Credentials and API errors surface later, from the first real call.
 */
export async function assertStorageReachable(host: HostStorage, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
    const services = {
        blob: host.connection.blob.url,
        queue: host.queues.url,
        table: host.connection.tables.url,
    };
    for (const [service, url] of Object.entries(services)) {
        try {
            await answers(url, timeoutMs);
        } catch (err) {
            throw new LocalPlatformError(
                'PREREQUISITE_FAILED',
                `AzureWebJobsStorage's ${service} service at ${url} does not answer (${causeOf(err)}): start that ` +
                    'storage, or run without --no-azurite to use the embedded Azurite.',
                { service, url },
            );
        }
    }
}

/** A listen failure as one line that says what to do. */
export function listenFailure(err: unknown, port: number, hostname: string): Error {
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') {
        return new LocalPlatformError(
            'PREREQUISITE_FAILED',
            `Port ${port} on ${hostname} is already in use (another hvr start or func start?): stop it or pass --port.`,
            { port, hostname },
        );
    }
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES') {
        return new LocalPlatformError(
            'PREREQUISITE_FAILED',
            `Cannot listen on ${hostname}:${port} (${code}): pass an address of this machine with --host, or another --port.`,
            { port, hostname },
        );
    }
    return err instanceof Error ? err : new Error(String(err));
}
