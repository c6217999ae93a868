import { join } from 'node:path';
import { startLocalHost } from '../../../tools/platform';

// The merge's host in a process of its own, so a test can kill it with SIGKILL: the local host with the
// merge function, on the storage of CRASH_STORAGE, scanning for uploads and polling the event queue.
async function main(): Promise<void> {
    const root = join(__dirname, '../../..');
    const host = await startLocalHost({
        appRoot: root,
        modules: [join(root, 'functions/mergeReplicaLog.ts')],
        port: 0,
        storageConnectionString: process.env.CRASH_STORAGE!,
        settings: {
            STATE_TABLE_PREFIX: process.env.STATE_TABLE_PREFIX!,
            MERGE_READ_BYTES: process.env.MERGE_READ_BYTES ?? String(1024 * 1024),
            MERGE_CONCURRENCY: process.env.MERGE_CONCURRENCY ?? '2',
            MERGE_TIME_BUDGET_SECONDS: process.env.MERGE_TIME_BUDGET_SECONDS ?? '300',
        },
        blobScanIntervalMs: 200,
        timers: false,
        queueTrigger: { leaseSeconds: Number(process.env.CRASH_LEASE_SECONDS ?? 5), minPollingIntervalMs: 100 },
        log: (line) => process.stdout.write(`${Date.now()} ${line}\n`),
    });
    process.stdout.write(`READY ${host.url}\n`);
    const stop = (): void => {
        void host.stop().then(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
    process.stderr.write(`merge host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
});
