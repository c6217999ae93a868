import { join } from 'node:path';
import { startLocalHost } from '../tools/platform';

/**
 * The merge host of the `mergeTrigger` benchmark, in a process of its own so its peak RSS is the merge's:
 * the local host with the compiled mergeReplicaLog function, its container scan emulating Event Grid and its
 * queue trigger on replica-log-events. SIGTERM stops it; it then prints one JSON line with its peak RSS.
 */
async function main(): Promise<void> {
    const root = join(__dirname, '..', '..');
    const host = await startLocalHost({
        appRoot: root,
        modules: [join(root, 'dist/functions/mergeReplicaLog.js')],
        port: 0,
        storageConnectionString: process.env.BENCH_CONN!,
        settings: {
            STATE_TABLE_PREFIX: 'bench',
            MERGE_TIME_BUDGET_SECONDS: process.env.MERGE_TIME_BUDGET_SECONDS ?? '300',
        },
        blobScanIntervalMs: 500,
        timers: false,
        log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stderr.write(`merge host ready at ${host.url}\n`);
    process.on('SIGTERM', () => {
        void host.stop().then(() => {
            process.stdout.write(JSON.stringify({ maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
            process.exit(0);
        });
    });
}

main().catch((err: unknown) => {
    process.stderr.write(`merge host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
});
