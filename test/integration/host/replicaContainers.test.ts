import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockBlobClient } from '@azure/storage-blob';
import { REPLICA_LOGS_CONTAINER } from '../../../shared/contracts/blobNames';
import { BlobUploadGrants } from '../../../shared/grants/uploadGrants';
import { connectionFromString } from '../../../shared/storage/connections';
import { LocalHost, startLocalHost } from '../../../tools/platform';
import { LOCAL_REPLICA_CONTAINERS } from '../../../tools/platform/replicaContainers';

/** The names infra/main.bicep gives `replicaContainers`, resolving the `var` names it uses in the list. */
function infraReplicaContainers(): string[] {
    const bicep = readFileSync(join(__dirname, '../../../infra/main.bicep'), 'utf8');
    const vars = new Map<string, string>();
    for (const m of bicep.matchAll(/^var (\w+) = '([^']*)'$/gm)) vars.set(m[1]!, m[2]!);
    const list = /^var replicaContainers = \[\n([\s\S]*?)\n\]/m.exec(bicep);
    if (!list) throw new Error('infra/main.bicep has no `var replicaContainers = [ ... ]` list');
    return list[1]!
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '')
        .map((item) => (item.startsWith("'") ? item.slice(1, -1) : (vars.get(item) ?? `unresolved ${item}`)));
}

describe('the local host creates the replica storage containers infra creates', () => {
    it('knows the same container names as infra/main.bicep', () => {
        expect([...LOCAL_REPLICA_CONTAINERS].sort()).toEqual(infraReplicaContainers().sort());
    });

    describe('on its own Azurite, as `npm start` runs it', () => {
        let host: LocalHost;
        const lines: string[] = [];

        beforeAll(async () => {
            host = await startLocalHost({
                appRoot: __dirname,
                modules: [require.resolve('./fixtures/httpApp')],
                port: 0,
                blobScanIntervalMs: 0,
                timers: false,
                queuePolling: false,
                log: (line) => lines.push(line),
            });
        }, 60_000);
        afterAll(async () => {
            await host?.stop();
        });

        it('has every container before anything uploads, and says which it created', async () => {
            const conn = connectionFromString(host.settings.REPLICA_STORAGE!);
            for (const name of LOCAL_REPLICA_CONTAINERS) {
                expect(
                    await conn.blob.getContainerClient(name).exists({ abortSignal: AbortSignal.timeout(10_000) }),
                ).toBe(true);
            }
            expect(lines).toContain(`Created blob containers: ${LOCAL_REPLICA_CONTAINERS.join(', ')}.`);
        });

        it("takes a provider's first upload through a write-only grant", async () => {
            const conn = connectionFromString(host.settings.REPLICA_STORAGE!);
            const [grant] = await new BlobUploadGrants(conn).issue(
                [
                    {
                        siteId: 'site-a',
                        vmId: 'vm-1',
                        diskId: 'disk-0',
                        sequence: 1,
                        logId: '5e5e5e5e-0000-4000-8000-000000000001',
                    },
                ],
                new Date(),
            );
            expect(grant!.blobPath.startsWith(`${REPLICA_LOGS_CONTAINER}/`)).toBe(true);
            const body = Buffer.alloc(512, 7);
            await new BlockBlobClient(grant!.url).upload(body, body.length, {
                abortSignal: AbortSignal.timeout(10_000),
            });
        });
    });
});
