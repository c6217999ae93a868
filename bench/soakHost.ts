import { join } from 'node:path';
import { invocationCounts } from '../packages/functions-local/src';
import { startLocalHost } from '../tools/platform';

/**
 * The `soak` benchmark's host, in a process of its own so its CPU time and RSS are the pipeline's alone: the
 * local host with the whole app on the storage in BENCH_CONN, its own provider bus. Talks over IPC: sends
 * `{ready, apiUrl, functionKey, providerBus}` once started; answers `stats` with its CPU time, RSS and the
 * executions of every function; `stop` stops the host and exits.
 */
async function main(): Promise<void> {
    const root = join(__dirname, '..', '..');
    const host = await startLocalHost({
        appRoot: root,
        port: 0,
        storageConnectionString: process.env.BENCH_CONN!,
        settings: {
            PROVIDER_BUS: '',
            FAILOVER_INFRASTRUCTURE: 'dryrun',
        },
        ...(process.env.BENCH_DURABLE === 'dtfx' ? { durable: 'dtfx' as const } : {}),
        // Event Grid delivers BlobCreated within about a second in Azure.
        blobScanIntervalMs: 1000,
        log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
    });
    const send = (message: unknown): void => {
        process.send?.(message);
    };
    send({ ready: true, apiUrl: host.apiUrl, functionKey: host.functionKey, providerBus: host.settings.PROVIDER_BUS });
    process.on('message', (message: { type?: string }) => {
        if (message.type === 'stats') {
            const cpu = process.cpuUsage();
            send({
                stats: {
                    cpuSeconds: (cpu.user + cpu.system) / 1e6,
                    rssBytes: process.memoryUsage.rss(),
                    peakRssBytes: process.resourceUsage().maxRSS * 1024,
                    invocations: invocationCounts(),
                },
            });
        } else if (message.type === 'stop') {
            void host
                .stop()
                .catch((err: unknown) => process.stderr.write(`stopping the host: ${String(err)}\n`))
                .then(() => process.exit(0));
        }
    });
    process.on('disconnect', () => process.exit(0));
}

main().catch((err: unknown) => {
    process.stderr.write(`soak host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
});
