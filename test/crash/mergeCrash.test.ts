import { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { setPorts } from '../../shared/ports';
import { RunningAzurite, startAzurite, functionRegistry } from '../../packages/functions-local/src';
import { LocalHost, startLocalHost } from '../../tools/platform';
import { hasQemuImg, qemuCompare, ReplicaHarness, seededRandom } from '../integration/replica/harness';
import { diskRow, protectedItemFor, startMergeHost, waitFor } from './support';
import '../../functions/apiReplicationProtectedItems';

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
/** The local queue lease in these tests: a killed host's message is delivered again this soon. */
const LEASE_SECONDS = 4;

/** The protected item as GET /replicationProtectedItems/{vmId} shows it now. */
async function shownHealth(h: ReplicaHarness): Promise<{ health: string; reasons: string[] }> {
    const restore = setPorts({ storage: () => h.storage });
    const previous = process.env.STATE_TABLE_PREFIX;
    process.env.STATE_TABLE_PREFIX = h.scope.tablePrefix;
    try {
        const fn = functionRegistry().get('apiReplicationProtectedItem');
        const request = new HttpRequest({
            method: 'GET',
            url: `http://127.0.0.1/api/replicationProtectedItems/${h.vmId}`,
            params: { vmId: h.vmId },
        });
        const response = (await fn.handler(
            request,
            new InvocationContext({ functionName: fn.name }),
        )) as HttpResponseInit;
        const body = response.jsonBody as {
            properties: { replicationHealth: string; healthReasons: { code: string }[] };
        };
        return { health: body.properties.replicationHealth, reasons: body.properties.healthReasons.map((r) => r.code) };
    } finally {
        restore();
        if (previous === undefined) delete process.env.STATE_TABLE_PREFIX;
        else process.env.STATE_TABLE_PREFIX = previous;
    }
}

describe('a merge killed at each step recovers by itself on the same storage', () => {
    let azurite: RunningAzurite;
    let host: LocalHost | undefined;
    beforeAll(async () => {
        azurite = await startAzurite();
    });
    afterEach(async () => {
        await host?.stop();
        host = undefined;
    });
    afterAll(async () => {
        await azurite.stop();
    });

    // [step, whether the replica is torn (a write intent is held) once the process is dead]
    const steps: [string, boolean][] = [
        ['before-intent', false],
        ['after-pages:3', true],
        ['after-seal', true],
        ['before-row', true],
        ['before-delete', false],
    ];

    it.each(steps)(
        'killed %s: identical replica, honest state meanwhile, re-merged within a minute',
        async (step, torn) => {
            const h = new ReplicaHarness(azurite.connectionString);
            const disk = await h.addDisk('disk0', 8 * MiB);
            await protectedItemFor(h, ['disk0']);
            disk.randomWrites(seededRandom(step.length * 7919), 30);
            await h.upload('disk0', disk.cutLog());

            const victim = startMergeHost(h, azurite.connectionString, {
                CRASH_AT: step,
                CRASH_LEASE_SECONDS: String(LEASE_SECONDS),
            });
            const ended = await Promise.race([
                victim.ended,
                new Promise<undefined>((r) => setTimeout(() => r(undefined), 60_000)),
            ]);
            if (!ended) victim.child.kill('SIGKILL');
            expect({ signal: ended?.signal, crashed: victim.output.some((l) => l.startsWith('CRASH ')) }).toEqual({
                signal: 'SIGKILL',
                crashed: true,
            });
            const killedAt = ended!.at;

            // While nobody runs the merge, the state says what is true about the replica.
            const row = await diskRow(h);
            expect(row.applyingSequence !== undefined && row.applyingSequence > row.sequence).toBe(torn);
            const meanwhile = await shownHealth(h);
            if (torn) expect(meanwhile).toEqual({ health: 'Warning', reasons: ['ReplicaBeingRepaired'] });
            else expect(meanwhile.reasons).not.toContain('ReplicaBeingRepaired');

            // A host restarted on the same storage finishes the log from the queue, with no operator action.
            host = await startLocalHost({
                appRoot: `${__dirname}/../..`,
                modules: [require.resolve('../../functions/mergeReplicaLog')],
                port: 0,
                storageConnectionString: azurite.connectionString,
                settings: { STATE_TABLE_PREFIX: h.scope.tablePrefix, MERGE_READ_BYTES: String(MiB) },
                blobScanIntervalMs: 200,
                timers: false,
                queueTrigger: { leaseSeconds: LEASE_SECONDS, minPollingIntervalMs: 100 },
                log: () => undefined,
            });
            const done = await waitFor(
                async () => {
                    const r = await diskRow(h);
                    if (r.sequence !== 1 || r.applyingSequence !== undefined || !r.lastLogId) return undefined;
                    const logLeft = await h.logExists('replica-logs', h.logName('disk0', 1, r.lastLogId));
                    return logLeft ? undefined : Date.now();
                },
                60_000,
                () => `the disk row never reached log 1 (${victim.output.slice(-5).join(' | ')})`,
            );
            expect(done - killedAt).toBeLessThan(60_000);

            const replica = await h.replicaBytes('disk0');
            expect(replica.subarray(0, disk.virtualSize).equals(disk.bytes)).toBe(true);
            if (hasQemuImg) expect(await qemuCompare(disk.bytes, replica)).toMatchObject({ code: 0 });
            else process.stdout.write('qemu-img is missing: the independent VHD comparison is skipped\n');
            expect(await shownHealth(h)).toEqual({ health: 'Normal', reasons: [] });
        },
    );
});
