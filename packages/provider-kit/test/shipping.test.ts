import { bufferSource, readHrlData, readHrlIndex } from '../../../shared/hrl';
import {
    DiskChain,
    GrantRefused,
    LOG_METADATA_KEYS,
    planLogs,
    ProviderCommand,
    shipCycle,
    shipInitialReplication,
    ShipChannel,
    UploadGrantItem,
    UploadRequest,
    validateCommand,
} from '../src';

/** A channel that answers every grant request at once and keeps what was sent (each checked by its schema). */
function fakeChannel(): ShipChannel & { commands: ProviderCommand[]; requests: UploadRequest[][] } {
    const commands: ProviderCommand[] = [];
    const requests: UploadRequest[][] = [];
    return {
        commands,
        requests,
        send: async (command: ProviderCommand) => {
            validateCommand(command);
            commands.push(command);
            return `m-${commands.length}`;
        },
        requestGrants: async (vmId: string, uploads: UploadRequest[]) => {
            requests.push(uploads);
            return uploads.map((u): UploadGrantItem => ({
                ...u,
                blobPath: `replica-logs/site/${vmId}/${u.diskId}/${u.sequence}-${u.logId}.hrl`,
                url: `https://example.invalid/${u.diskId}/${u.sequence}`,
                expiresOn: '2026-01-01T00:00:00Z',
            }));
        },
    };
}

interface Uploaded {
    grant: UploadGrantItem;
    log: Buffer;
    metadata: Record<string, string>;
}

async function applyTo(disk: Buffer, log: Buffer): Promise<void> {
    const index = await readHrlIndex(bufferSource(log));
    for await (const piece of readHrlData(bufferSource(log), index)) piece.data.copy(disk, piece.diskOffset);
}

describe('planLogs', () => {
    it('splits ranges into entries of at most 1 MiB and logs of at most the data limit', () => {
        const plan = planLogs([{ offset: 0, length: 3 * 1024 * 1024 }], 2 * 1024 * 1024);
        expect(plan.map((log) => log.map((e) => e.length))).toEqual([[1048576, 1048576], [1048576]]);
        expect(planLogs([], 8 * 1024 * 1024)).toEqual([[{ offset: 0, length: 512 }]]);
        expect(() => planLogs([{ offset: 100, length: 512 }], 4096)).toThrow(/sectors/);
    });
});

describe('initial replication and a cycle', () => {
    const capturedAt = new Date('2026-02-01T12:00:00.000Z');

    it('ships every disk from sequence 1, only the last log closes "initial", progress ends at 100', async () => {
        const channel = fakeChannel();
        const uploaded: Uploaded[] = [];
        const os = Buffer.alloc(3 * 1024 * 1024, 7);
        const data = Buffer.alloc(64 * 1024, 0);
        data.fill(5, 8192, 12288);
        const disks = [
            { chain: new DiskChain('os'), source: bufferSource(os), ranges: [{ offset: 0, length: os.length }] },
            { chain: new DiskChain('data1'), source: bufferSource(data), ranges: [{ offset: 8192, length: 4096 }] },
        ];
        const ctx = {
            channel,
            vmId: 'vm-1',
            grantTimeoutMs: 1000,
            capturedAt,
            maxLogDataBytes: 1024 * 1024,
            upload: async (grant: UploadGrantItem, log: Buffer, metadata: Record<string, string>) => {
                uploaded.push({ grant, log, metadata });
            },
        };
        const logs = await shipInitialReplication(ctx, disks);

        expect(logs.filter((l) => l.diskId === 'os').map((l) => l.sequence)).toEqual([1, 2, 3]);
        expect(logs.filter((l) => l.diskId === 'data1').map((l) => l.sequence)).toEqual([1]);
        // One grant request per round: both disks in the first, the OS disk alone after.
        expect(channel.requests.map((r) => r.map((u) => u.diskId))).toEqual([['os', 'data1'], ['os'], ['os']]);
        const closing = uploaded.filter((u) => u.metadata[LOG_METADATA_KEYS.cycleId] === 'initial');
        expect(closing.map((u) => `${u.grant.diskId}#${u.grant.sequence}`).sort()).toEqual(['data1#1', 'os#3']);
        const progress = channel.commands.filter((c) => c.type === 'InitialReplicationProgress');
        const osPercents = progress.map((c) => (c as { disks: Record<string, number> }).disks.os!);
        expect(osPercents).toEqual([...osPercents].sort((a, b) => a - b));
        expect(progress[progress.length - 1]).toMatchObject({ disks: { os: 100, data1: 100 } });
        expect(channel.commands.some((c) => c.type === 'CycleCompleted')).toBe(false);

        // The logs rebuild the disks.
        const replica = Buffer.alloc(os.length);
        for (const u of uploaded.filter((x) => x.grant.diskId === 'os')) await applyTo(replica, u.log);
        expect(replica.equals(os)).toBe(true);

        // A delta cycle: a disk with no change still closes the cycle; CycleCompleted names each disk's log.
        os.fill(1, 4096, 8192);
        uploaded.length = 0;
        await shipCycle(ctx, 'cycle-1', [
            { ...disks[0]!, ranges: [{ offset: 4096, length: 4096 }] },
            { ...disks[1]!, ranges: [] },
        ]);
        expect(uploaded.map((u) => [u.grant.diskId, u.grant.sequence, u.metadata[LOG_METADATA_KEYS.cycleId]])).toEqual([
            ['os', 4, 'cycle-1'],
            ['data1', 2, 'cycle-1'],
        ]);
        for (const u of uploaded.filter((x) => x.grant.diskId === 'os')) await applyTo(replica, u.log);
        expect(replica.equals(os)).toBe(true);
        const completed = channel.commands.find((c) => c.type === 'CycleCompleted');
        expect(completed).toMatchObject({
            vmId: 'vm-1',
            cycleId: 'cycle-1',
            consistency: 'CrashConsistent',
            capturedAt: '2026-02-01T12:00:00.000Z',
            logs: [
                { diskId: 'os', sequence: 4 },
                { diskId: 'data1', sequence: 2 },
            ],
        });
        await expect(shipCycle(ctx, 'initial', [])).rejects.toThrow(/initial replication's cycle id/);
    });

    it('asks again for a grant that storage refused, for the same log', async () => {
        const channel = fakeChannel();
        let refused = false;
        const puts: UploadGrantItem[] = [];
        await shipCycle(
            {
                channel,
                vmId: 'vm-2',
                grantTimeoutMs: 1000,
                capturedAt,
                upload: async (grant) => {
                    if (!refused) {
                        refused = true;
                        throw new GrantRefused(grant, 403);
                    }
                    puts.push(grant);
                },
            },
            'cycle-9',
            [{ chain: new DiskChain('os'), source: bufferSource(Buffer.alloc(4096)), ranges: [] }],
        );
        expect(channel.requests).toHaveLength(2);
        expect(channel.requests[1]).toEqual(channel.requests[0]);
        expect(puts).toHaveLength(1);
    });

    it('refuses initial replication on a chain that already started', async () => {
        const chain = new DiskChain('os');
        chain.buildLog([{ diskOffset: 0, data: Buffer.alloc(512) }], capturedAt);
        await expect(
            shipInitialReplication({ channel: fakeChannel(), vmId: 'vm-3', grantTimeoutMs: 1, capturedAt }, [
                { chain, source: bufferSource(Buffer.alloc(512)), ranges: [] },
            ]),
        ).rejects.toThrow(/initial replication starts a chain/);
    });
});
