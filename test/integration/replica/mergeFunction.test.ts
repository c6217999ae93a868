import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { functionRegistry } from '../../../tools/host/registry';
import { setPorts } from '../../../shared/ports';
import { getReplicaDisk } from '../../../shared/state/disks';
import { ReplicaHarness, seededRandom } from './harness';
import '../../../functions/mergeReplicaLog';

jest.setTimeout(120_000);

/** A stand-in for the Functions host's durable webhook: records raised events; the protect instance is unknown. */
async function durableHost(): Promise<{ server: Server; url: string; raised: { path: string; body: string }[] }> {
    const raised: { path: string; body: string }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
            raised.push({ path: decodeURIComponent(req.url ?? ''), body });
            res.statusCode = (req.url ?? '').includes('protect') ? 404 : 202;
            res.end();
        });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, raised };
}

describe('the mergeReplicaLog function', () => {
    it('is an EventGrid blob trigger on replica-logs through the REPLICA_STORAGE connection, with a durable client', () => {
        const fn = functionRegistry().get('mergeReplicaLog');
        expect(fn.trigger).toMatchObject({
            type: 'blobTrigger',
            path: 'replica-logs/{name}',
            source: 'EventGrid',
            connection: 'REPLICA_STORAGE',
        });
        expect(Object.values(fn.metadata.bindings).some((b) => b.type === 'durableClient')).toBe(true);
        expect(functionRegistry().get('mergeGapSweep').trigger).toMatchObject({ type: 'timerTrigger' });
    });

    it('merges the uploaded log and raises LogApplied, even when one target orchestration does not exist', async () => {
        const h = new ReplicaHarness();
        const disk = await h.addDisk('disk0', 4 * 1024 * 1024);
        disk.randomWrites(seededRandom(3), 8);
        const name = await h.upload('disk0', disk.cutLog(), { cycleId: 'c1' });
        const host = await durableHost();
        const restore = setPorts({ storage: () => h.storage, clock: h.clock });
        const previousPrefix = process.env.STATE_TABLE_PREFIX;
        process.env.STATE_TABLE_PREFIX = h.scope.tablePrefix;
        try {
            const fn = functionRegistry().get('mergeReplicaLog');
            const clientInput = df.input.durableClient();
            const context = new InvocationContext({
                functionName: 'mergeReplicaLog',
                triggerMetadata: { name },
                options: { trigger: fn.trigger as never, extraInputs: [clientInput], extraOutputs: [] },
            });
            context.extraInputs.set(clientInput, {
                taskHubName: 'test',
                creationUrls: {},
                managementUrls: {},
                baseUrl: host.url,
                requiredQueryStringParameters: '',
                rpcBaseUrl: host.url,
            });
            await fn.handler(Buffer.alloc(0), context);
            expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.sequence).toBe(1);
            const paths = host.raised.map((r) => r.path);
            expect(paths.some((p) => p.includes(`monitor:${h.vmId}`) && p.includes('LogApplied'))).toBe(true);
            expect(paths.some((p) => p.includes(`protect:${h.vmId}`))).toBe(true);
            expect(paths.some((p) => p.includes('CycleComplete'))).toBe(true);
        } finally {
            restore();
            if (previousPrefix === undefined) delete process.env.STATE_TABLE_PREFIX;
            else process.env.STATE_TABLE_PREFIX = previousPrefix;
            host.server.close();
        }
    });
});
