import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CHAIN_GAP_MIN_SECONDS_SETTING } from '../../../shared/replica/chainGap';
import { startLocalHost } from '../../../tools/platform';

// The local host in a process of its own, so a test can kill it with SIGKILL and start another on the same
// storage: the app's TypeScript sources, durable state in storage, fixed HTTP and provider-bus ports (the
// provider reconnects to the same address), the settings hvr simulate gives its own host.
async function main(): Promise<void> {
    const root = join(__dirname, '../../..');
    const modules = ['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(root, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(root, dir, f)),
    );
    const host = await startLocalHost({
        appRoot: root,
        modules,
        port: Number(process.env.DURABLE_HOST_PORT),
        functionKey: process.env.DURABLE_HOST_KEY!,
        storageConnectionString: process.env.DURABLE_HOST_STORAGE!,
        durableState: 'storage',
        ifTaskHubOwned: process.env.DURABLE_HOST_IF_OWNED === 'exit' ? 'exit' : 'wait',
        settings: {
            PROVIDER_BUS: '',
            [CHAIN_GAP_MIN_SECONDS_SETTING]: '2',
            FAILOVER_INFRASTRUCTURE: 'dryrun',
        },
        blobScanIntervalMs: Number(process.env.DURABLE_HOST_BLOB_SCAN_MS ?? 200),
        serviceBus: {
            pollIntervalMs: 100,
            receiveWaitMs: 500,
            siteScanIntervalMs: 250,
            brokerPort: Number(process.env.DURABLE_HOST_BUS_PORT),
        },
        log: (line) => process.stdout.write(`${line}\n`),
    });
    process.stdout.write(`READY ${host.apiUrl} ${host.settings.PROVIDER_BUS}\n`);
    const stop = (): void => {
        void host.stop().then(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
    process.stderr.write(`durable host failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
});
