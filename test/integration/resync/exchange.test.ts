import { ContainerClient } from '@azure/storage-blob';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bufferSource, HrlFileWriter, openFileSource, readHrlData, readHrlIndex } from '../../../shared/hrl';
import { nodeCountAt } from '../../../shared/resync/digest';
import {
    DigestIndex,
    DiskBlobs,
    markDirty,
    refreshDigestIndex,
    replicaBlobNameOf,
} from '../../../shared/resync/digestIndex';
import { decodeDigestRequest, encodeDigestRequest } from '../../../shared/resync/manifest';
import { ProviderComparison, writeDifferingBlocks } from '../../../shared/resync/provider';
import { testStorage, uniqueName } from '../../support/azurite';

const KiB = 1024;
const MiB = 1024 * KiB;
const DISK = 24 * MiB;

let container: ContainerClient;
let dir: string;

beforeAll(async () => {
    container = testStorage().blob.getContainerClient(uniqueName('resyncx'));
    await container.create();
    dir = await mkdtemp(join(tmpdir(), 'resync-exchange-'));
});

afterAll(async () => {
    await container.delete();
    await rm(dir, { recursive: true, force: true });
});

/** A replica in Azurite and a source that drifted from it: scattered writes, a run, a cleared stretch, new data. */
async function driftedDisk(): Promise<{ d: DiskBlobs; source: Buffer; replicaContent: Buffer }> {
    const d: DiskBlobs = { container, vmId: uniqueName('vm'), diskId: 'd0' };
    const replica = container.getPageBlobClient(replicaBlobNameOf(d));
    await replica.create(DISK + 512);
    const replicaContent = Buffer.alloc(DISK);
    randomBytes(16 * MiB).copy(replicaContent, 0);
    for (let o = 0; o < 16 * MiB; o += 4 * MiB)
        await replica.uploadPages(replicaContent.subarray(o, o + 4 * MiB), o, 4 * MiB);
    const source = Buffer.from(replicaContent);
    for (let i = 0; i < 25; i++) randomBytes(4 * KiB).copy(source, ((i * 613) % 4096) * 4 * KiB);
    randomBytes(256 * KiB).copy(source, 9 * MiB + 12 * KiB);
    source.fill(0, 14 * MiB, 14 * MiB + 64 * KiB);
    randomBytes(40 * KiB).copy(source, 20 * MiB);
    return { d, source, replicaContent };
}

/** Cloud and provider in one process, as the orchestration and a provider would run them. */
async function exchange(d: DiskBlobs, source: Buffer, logPath: string): Promise<ProviderComparison> {
    await refreshDigestIndex(d);
    const index = (await DigestIndex.open(d))!;
    const first = await index.manifest(0, 1, [{ first: 0, count: nodeCountAt(index.geometry, 0) }]);
    const cmp = await ProviderComparison.begin(bufferSource(source), first);
    let round = 1;
    for (let req = cmp.nextRequest(); req; req = cmp.nextRequest()) {
        // The request crosses the wire encoded, and the cloud decodes it against the disk.
        const received = decodeDigestRequest(encodeDigestRequest(req), index.geometry);
        await cmp.compare(await index.manifest(received.level, ++round, received.ranges));
    }
    const writer = await HrlFileWriter.create(logPath);
    await writeDifferingBlocks(bufferSource(source), cmp.differingRanges(), writer);
    await writer.close();
    return cmp;
}

/** The merge's part, reduced: marker, pages, sequence number. */
async function mergeLog(d: DiskBlobs, logPath: string, sequence: number): Promise<void> {
    const replica = container.getPageBlobClient(replicaBlobNameOf(d));
    const log = await openFileSource(logPath);
    try {
        const hrl = await readHrlIndex(log, { diskSize: DISK });
        await markDirty(
            d,
            sequence,
            [...hrl.entries()].map((e) => ({ offset: e.diskOffset, length: e.length })),
        );
        for await (const piece of readHrlData(log, hrl, { verify: true })) {
            await replica.uploadPages(piece.data, piece.diskOffset, piece.data.length);
        }
    } finally {
        await log.close();
    }
    await replica.updateSequenceNumber('update', sequence);
}

describe('resync exchange against Azurite', () => {
    it('leaves the replica equal to the source after merging the resync log', async () => {
        const { d, source, replicaContent } = await driftedDisk();
        const logPath = join(dir, `${d.vmId}.hrl`);
        const cmp = await exchange(d, source, logPath);
        const index = (await DigestIndex.open(d))!;
        expect((await index.rootDigest()).equals(cmp.rootDigest)).toBe(false);

        // Only changed 4 KiB blocks travel: far less than the disk.
        const sent = cmp.differingRanges().reduce((n, r) => n + r.length, 0);
        let changedLeaves = 0;
        for (let o = 0; o < DISK; o += 4 * KiB) {
            if (!source.subarray(o, o + 4 * KiB).equals(replicaContent.subarray(o, o + 4 * KiB))) changedLeaves++;
        }
        expect(sent).toBe(changedLeaves * 4 * KiB);

        await mergeLog(d, logPath, 1);
        await refreshDigestIndex(d);
        expect((await (await DigestIndex.open(d))!.rootDigest()).equals(cmp.rootDigest)).toBe(true);

        const replicaData = await container.getPageBlobClient(replicaBlobNameOf(d)).downloadToBuffer(0, DISK);
        expect(replicaData.equals(source)).toBe(true);
        if (existsSync('/usr/bin/qemu-img')) {
            const a = join(dir, `${d.vmId}-source.raw`);
            const b = join(dir, `${d.vmId}-replica.raw`);
            await writeFile(a, source);
            await writeFile(b, replicaData);
            // Exit status 0: identical; 1: different (execFileSync throws).
            expect(execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', a, b], { encoding: 'utf8' })).toMatch(
                /identical/,
            );
        }

        // A second resync finds nothing left to send.
        const again = await exchange(d, source, join(dir, `${d.vmId}-2.hrl`));
        expect(again.differingRanges()).toEqual([]);
        expect(again.stats.rounds).toBe(1);
    });

    it('an interrupted exchange started again from round 1 produces the same log', async () => {
        const { d, source } = await driftedDisk();
        // The provider restarts mid-way: the first attempt is abandoned after round 2.
        await refreshDigestIndex(d);
        const index = (await DigestIndex.open(d))!;
        const first = await index.manifest(0, 1, [{ first: 0, count: nodeCountAt(index.geometry, 0) }]);
        const abandoned = await ProviderComparison.begin(bufferSource(source), first);
        const req = abandoned.nextRequest()!;
        await abandoned.compare(await index.manifest(req.level, 2, req.ranges));
        // The republished round-1 manifest is byte-identical, and the restarted exchange completes.
        expect((await index.manifest(0, 1, [{ first: 0, count: nodeCountAt(index.geometry, 0) }])).equals(first)).toBe(
            true,
        );
        const cmp = await exchange(d, source, join(dir, `${d.vmId}.hrl`));
        await mergeLog(d, join(dir, `${d.vmId}.hrl`), 1);
        await refreshDigestIndex(d);
        expect((await (await DigestIndex.open(d))!.rootDigest()).equals(cmp.rootDigest)).toBe(true);
    });
});
