import { ContainerClient, PageBlobClient } from '@azure/storage-blob';
import { randomBytes } from 'node:crypto';
import { HvrError } from '../../../shared/errors';
import { readFileSync } from 'node:fs';
import { checksum128, defaultGeometry, Digester, nodeCountAt } from '../../../shared/resync/digest';
import {
    compactDirtyMarkers,
    digestIndexBlobName,
    DIRTY_MARKER_COMPACT_EVERY_LOGS,
    DigestIndex,
    DiskBlobs,
    dirtyMarkerBlobName,
    invalidateDigestIndex,
    markDirty,
    MAX_COMPACTED_MARKER_RANGES,
    refreshDigestIndex,
    replicaBlobNameOf,
    rotateDigestIndex,
    widenRanges,
} from '../../../shared/resync/digestIndex';
import { mergeByteRanges, writtenRanges } from '../../../shared/resync/target';
import { ByteSource } from '../../../shared/resync/provider';
import { digestTreeOf, manifestFromTree, rootDigestOf } from '../../../shared/resync/tree';
import { testStorage, uniqueName } from '../../support/azurite';

const KiB = 1024;
const MiB = 1024 * KiB;
const DISK = 40 * MiB; // three refresh windows (16 MiB each)

function memorySource(buf: Buffer): ByteSource {
    return { size: buf.length, read: (o, l) => Promise.resolve(buf.subarray(o, o + l)) };
}

interface Fixture {
    disk: DiskBlobs;
    replica: PageBlobClient;
    /** What the replica's data holds, kept in step with every write. */
    content: Buffer;
}

let container: ContainerClient;

beforeAll(async () => {
    container = testStorage().blob.getContainerClient(uniqueName('resync'));
    await container.create();
});

afterAll(async () => {
    await container.delete();
});

async function newDisk(): Promise<Fixture> {
    const disk: DiskBlobs = { container, vmId: uniqueName('vm'), diskId: 'disk0' };
    const replica = container.getPageBlobClient(replicaBlobNameOf(disk));
    await replica.create(DISK + 512);
    const content = Buffer.alloc(DISK);
    // Written: the first 6 MiB, a 64 KiB island at 20 MiB, and a lone 512-byte sector at 33 MiB; the rest never.
    await write({ disk, replica, content }, 0, randomBytes(6 * MiB));
    await write({ disk, replica, content }, 20 * MiB, randomBytes(64 * KiB));
    await write({ disk, replica, content }, 33 * MiB + 1024, randomBytes(512));
    return { disk, replica, content };
}

async function write(f: Fixture, offset: number, data: Buffer): Promise<void> {
    for (let o = 0; o < data.length; o += 4 * MiB) {
        const piece = data.subarray(o, Math.min(data.length, o + 4 * MiB));
        await f.replica.uploadPages(piece, offset + o, piece.length);
    }
    data.copy(f.content, offset);
}

/** Applies "log n" to the replica the way the merge does: marker first, pages, then the sequence number. */
async function applyLog(f: Fixture, n: number, writes: [number, Buffer][]): Promise<void> {
    await markDirty(
        f.disk,
        n,
        writes.map(([offset, data]) => ({ offset, length: data.length })),
    );
    for (const [offset, data] of writes) await write(f, offset, data);
    await f.replica.updateSequenceNumber('update', n);
}

/** Runs `fn` while another holder has the index's lease, as a refresh in progress would. */
async function whileIndexLeased(f: Fixture, fn: () => Promise<unknown>): Promise<void> {
    const lease = container.getPageBlobClient(digestIndexBlobName(f.disk)).getBlobLeaseClient();
    await lease.acquireLease(15);
    try {
        await fn();
    } finally {
        await lease.releaseLease();
    }
}

async function expectIndexMatches(f: Fixture): Promise<void> {
    const index = (await DigestIndex.open(f.disk))!;
    const digester = await Digester.create(index.header.seed, defaultGeometry(DISK));
    const tree = await digestTreeOf(memorySource(f.content), digester);
    for (let level = 0; level < 3; level++) {
        const all = [{ first: 0, count: nodeCountAt(digester.geometry, level) }];
        const fromIndex = await index.manifest(level, level + 1, all);
        const fromData = await manifestFromTree(tree, digester, level, level + 1, all);
        expect(fromIndex.equals(fromData)).toBe(true);
    }
    expect((await index.rootDigest()).equals(rootDigestOf(tree, digester))).toBe(true);
}

describe('digest index against Azurite', () => {
    it('merges the page ranges Azurite returns unmerged', async () => {
        const f = await newDisk();
        const ranges = await writtenRanges(f.replica, DISK);
        expect(ranges).toEqual([
            { offset: 0, length: 6 * MiB },
            { offset: 20 * MiB, length: 64 * KiB },
            { offset: 33 * MiB + 1024, length: 512 },
        ]);
    });

    it('builds an index by reading only written ranges, equal to digests of the data', async () => {
        const f = await newDisk();
        const result = await refreshDigestIndex(f.disk);
        expect(result.complete).toBe(true);
        // The written 6 MiB + 64 KiB + one whole 4 KiB leaf around the lone sector; never the empty 34 MiB.
        expect(result.replica.bytesRead).toBe(6 * MiB + 64 * KiB + 4 * KiB);
        await expectIndexMatches(f);
    });

    it('after logs merge, re-reads only the blocks the logs wrote', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await applyLog(f, 1, [
            [1 * MiB + 8 * KiB, randomBytes(4 * KiB)],
            [30 * MiB, randomBytes(64 * KiB)],
        ]);
        await applyLog(f, 2, [[39 * MiB + 512, randomBytes(1024)]]);
        const result = await refreshDigestIndex(f.disk);
        expect(result).toMatchObject({ complete: true, appliedSequence: 2, markersConsumed: 2 });
        expect(result.replica.bytesRead).toBe(4 * KiB + 64 * KiB + 4 * KiB);
        await expectIndexMatches(f);
        // Consumed markers are gone; a refresh with nothing dirty reads nothing.
        const again = await refreshDigestIndex(f.disk);
        expect(again.replica.bytesRead).toBe(0);
        expect(again.markersConsumed).toBe(0);
    });

    it('leaves the marker of a log still being applied for the next refresh', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        // Log 1 marked and written, but the sequence number not yet moved: the merge is mid-log.
        const data = randomBytes(4 * KiB);
        await markDirty(f.disk, 1, [{ offset: 8 * MiB, length: data.length }]);
        await write(f, 8 * MiB, data);
        const during = await refreshDigestIndex(f.disk);
        expect(during.markersConsumed).toBe(0);
        expect(await container.getBlockBlobClient(dirtyMarkerBlobName(f.disk, 1)).exists()).toBe(true);
        await f.replica.updateSequenceNumber('update', 1);
        const after = await refreshDigestIndex(f.disk);
        expect(after.markersConsumed).toBe(1);
        await expectIndexMatches(f);
    });

    it('rebuilds everything when a log was sealed without its dirty marker, instead of trusting stale slots', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await applyLog(f, 1, [[4 * MiB, randomBytes(4 * KiB)]]);
        // Log 2 reaches the replica behind the merge's back: pages and sequence number, no marker.
        await write(f, 2 * MiB, randomBytes(8 * KiB));
        await f.replica.updateSequenceNumber('update', 2);
        const result = await refreshDigestIndex(f.disk);
        expect(result).toMatchObject({ complete: true, appliedSequence: 2, unmarkedLogs: 1, markersConsumed: 1 });
        expect(result.replica.bytesRead).toBe(6 * MiB + 64 * KiB + 4 * KiB);
        await expectIndexMatches(f);
        // Current again: the next log costs only its own blocks.
        await applyLog(f, 3, [[30 * MiB, randomBytes(4 * KiB)]]);
        const next = await refreshDigestIndex(f.disk);
        expect(next).toMatchObject({ unmarkedLogs: 0, markersConsumed: 1 });
        expect(next.replica.bytesRead).toBe(4 * KiB);
        await expectIndexMatches(f);
    });

    it('rebuilds in steps under a read budget, resuming where it stopped', async () => {
        const f = await newDisk();
        await write(f, 16 * MiB, randomBytes(2 * MiB));
        const first = await refreshDigestIndex(f.disk, { budgetBytes: 1 });
        expect(first.complete).toBe(false);
        expect((await DigestIndex.open(f.disk))!.header.builtThroughLeaf).toBe((16 * MiB) / 4096);
        await expect((await DigestIndex.open(f.disk))!.manifest(0, 1, [{ first: 0, count: 40 }])).rejects.toThrow(
            /not built/,
        );
        const second = await refreshDigestIndex(f.disk, { budgetBytes: 1 });
        expect(second.complete).toBe(false);
        expect(second.replica.bytesRead).toBe(2 * MiB + 64 * KiB);
        const third = await refreshDigestIndex(f.disk, { budgetBytes: 1 });
        expect(third.complete).toBe(true);
        await expectIndexMatches(f);
    });

    it('refuses a second refresh while one holds the index', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await whileIndexLeased(f, () =>
            expect(refreshDigestIndex(f.disk)).rejects.toMatchObject({ code: 'CONCURRENT_UPDATE' }),
        );
    });

    it('leaves an unusable index that another worker holds to it: CONCURRENT_UPDATE, then a rebuild once it is free', async () => {
        // A refresh killed after creating the index blob: a zero header, and its lease until that expires.
        const f = await newDisk();
        const blob = container.getPageBlobClient(digestIndexBlobName(f.disk));
        await blob.create(1024 * 1024);
        const lease = blob.getBlobLeaseClient();
        await lease.acquireLease(15);
        try {
            await expect(refreshDigestIndex(f.disk)).rejects.toMatchObject({ code: 'CONCURRENT_UPDATE' });
            expect((await blob.getProperties()).contentLength).toBe(1024 * 1024);
        } finally {
            await lease.releaseLease();
        }
        const result = await refreshDigestIndex(f.disk);
        expect(result.complete).toBe(true);
        await expectIndexMatches(f);
    });

    it('creates a missing index once when two refreshes race for it; the loser is told, not failed by storage', async () => {
        const f = await newDisk();
        const results = await Promise.allSettled([refreshDigestIndex(f.disk), refreshDigestIndex(f.disk)]);
        for (const r of results) {
            if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'CONCURRENT_UPDATE' });
        }
        expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
        const after = await refreshDigestIndex(f.disk);
        expect(after.complete).toBe(true);
        await expectIndexMatches(f);
    });

    it('starts over from a corrupt index header instead of trusting it', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        const blob = container.getPageBlobClient(digestIndexBlobName(f.disk));
        await blob.uploadPages(Buffer.alloc(512, 0x55), 0, 512);
        await expect(DigestIndex.open(f.disk)).rejects.toBeInstanceOf(HvrError);
        const result = await refreshDigestIndex(f.disk);
        expect(result.complete).toBe(true);
        expect(result.replica.bytesRead).toBe(6 * MiB + 64 * KiB + 4 * KiB);
        await expectIndexMatches(f);
    });

    it('rotates to a new seed (full rebuild), and invalidates after a rollback', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk, { seedForNewIndex: 7n });
        await rotateDigestIndex(f.disk, 8n);
        const rotated = (await DigestIndex.open(f.disk))!;
        expect(rotated.header).toMatchObject({ seed: 8n, builtThroughLeaf: 0 });
        expect((await refreshDigestIndex(f.disk)).replica.bytesRead).toBe(6 * MiB + 64 * KiB + 4 * KiB);
        await expectIndexMatches(f);

        // A rollback restores content the markers never described (restoring a snapshot writes no marker).
        const before = Buffer.from(f.content.subarray(2 * MiB, 2 * MiB + 8 * KiB));
        await applyLog(f, 1, [[2 * MiB, randomBytes(8 * KiB)]]);
        await refreshDigestIndex(f.disk);
        await write(f, 2 * MiB, before);
        await refreshDigestIndex(f.disk);
        await expect(expectIndexMatches(f)).rejects.toThrow();
        await invalidateDigestIndex(f.disk);
        await refreshDigestIndex(f.disk);
        await expectIndexMatches(f);

        // The restored replica is at an earlier log than the index had reached: the invalidation says so.
        await applyLog(f, 2, [[3 * MiB, randomBytes(4 * KiB)]]);
        await refreshDigestIndex(f.disk);
        await f.replica.updateSequenceNumber('update', 1);
        await invalidateDigestIndex(f.disk, undefined, 1);
        expect((await DigestIndex.open(f.disk))!.header).toMatchObject({ appliedSequence: 1, builtThroughLeaf: 0 });
        expect(await refreshDigestIndex(f.disk)).toMatchObject({ complete: true, appliedSequence: 1 });
    });

    it('keeps its digests of a merged log identical to hashing the data, whatever the write sizes', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        const writes: [number, Buffer][] = [];
        for (let i = 0; i < 30; i++) {
            const offset = Math.floor(Math.random() * ((DISK - 16 * KiB) / 512)) * 512;
            writes.push([offset, i % 3 === 0 ? Buffer.alloc(1024) : randomBytes(512 * (1 + (i % 17)))]);
        }
        await applyLog(f, 1, writes);
        const result = await refreshDigestIndex(f.disk);
        const dirtyLeaves = mergeByteRanges(
            writes.map(([o, d]) => {
                const first = Math.floor(o / 4096) * 4096;
                return { offset: first, length: Math.ceil((o + d.length) / 4096) * 4096 - first };
            }),
        ).reduce((n, r) => n + r.length, 0);
        expect(result.replica.bytesRead).toBeGreaterThan(0);
        expect(result.leavesHashed).toBeLessThanOrEqual(dirtyLeaves / 4096);
        await expectIndexMatches(f);
    });
});

/** The sequence numbers of the disk's marker blobs, in order. */
async function markerNames(f: Fixture): Promise<number[]> {
    const prefix = dirtyMarkerBlobName(f.disk, 1).slice(0, -12);
    const out: number[] = [];
    for await (const b of container.listBlobsFlat({ prefix })) out.push(Number(b.name.slice(prefix.length)));
    return out;
}

/** A version-2 (compacted) marker's bytes, as docs/resync.md lays them out. */
async function compactedMarker(
    sequence: number,
    runs: [number, number][],
    ranges: [number, number][],
): Promise<Buffer> {
    const head = 32 + runs.length * 16;
    const b = Buffer.alloc(head + ranges.length * 16 + 16);
    b.write('HVRDIRTY', 0, 'ascii');
    b.writeUInt32LE(2, 8);
    b.writeUInt32LE(ranges.length, 12);
    b.writeBigUInt64LE(BigInt(sequence), 16);
    b.writeUInt32LE(runs.length, 24);
    runs.forEach(([first, count], i) => {
        b.writeBigUInt64LE(BigInt(first), 32 + i * 16);
        b.writeBigUInt64LE(BigInt(count), 40 + i * 16);
    });
    ranges.forEach(([offset, length], i) => {
        b.writeBigUInt64LE(BigInt(offset), head + i * 16);
        b.writeBigUInt64LE(BigInt(length), head + 8 + i * 16);
    });
    (await checksum128([b.subarray(0, b.length - 16)])).copy(b, b.length - 16);
    return b;
}

describe('compacting dirty markers', () => {
    // Leaf-aligned 4 KiB writes more than 32 KiB apart: a refresh reads exactly their leaves, one call each.
    const spots = [1, 9, 17, 25, 30, 35].map((m) => m * MiB);

    it('folds the markers of sealed logs into one; the next refresh reads just what the logs wrote', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        for (let n = 1; n <= spots.length; n++) await applyLog(f, n, [[spots[n - 1]!, randomBytes(4 * KiB)]]);
        // Log 7 is marked but not sealed: the merge is mid-log, so its marker is not the compaction's.
        await markDirty(f.disk, 7, [{ offset: 12 * MiB, length: 512 }]);

        const done = await compactDirtyMarkers(f.disk);
        expect(done).toEqual({
            indexed: true,
            markersFolded: 6,
            markersDeleted: 5,
            compactedInto: dirtyMarkerBlobName(f.disk, 6),
        });
        expect(await markerNames(f)).toEqual([6, 7]);

        const refreshed = await refreshDigestIndex(f.disk);
        expect(refreshed).toMatchObject({ complete: true, appliedSequence: 6, markersConsumed: 1, unmarkedLogs: 0 });
        expect(refreshed.replica.bytesRead).toBe(6 * 4 * KiB);
        await expectIndexMatches(f);
        expect(await markerNames(f)).toEqual([7]);
    });

    it('counts a compacted marker and a leftover marker of a log it covers once', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        for (let n = 1; n <= 3; n++) await applyLog(f, n, [[spots[n - 1]!, randomBytes(4 * KiB)]]);
        await compactDirtyMarkers(f.disk);
        // A compaction stopped after writing its marker and before deleting log 2's: log 2's marker again.
        await markDirty(f.disk, 2, [{ offset: spots[1]!, length: 4 * KiB }]);
        expect(await markerNames(f)).toEqual([2, 3]);
        const refreshed = await refreshDigestIndex(f.disk);
        expect(refreshed).toMatchObject({ complete: true, unmarkedLogs: 0, markersConsumed: 2 });
        expect(refreshed.replica.bytesRead).toBe(3 * 4 * KiB);
        await expectIndexMatches(f);
    });

    it('still notices a sealed log that left no marker, inside the folded ones', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await applyLog(f, 1, [[spots[0]!, randomBytes(4 * KiB)]]);
        await applyLog(f, 2, [[spots[1]!, randomBytes(4 * KiB)]]);
        await write(f, spots[2]!, randomBytes(4 * KiB)); // log 3: pages and sequence number, no marker
        await f.replica.updateSequenceNumber('update', 3);
        await applyLog(f, 4, [[spots[3]!, randomBytes(4 * KiB)]]);
        expect(await compactDirtyMarkers(f.disk)).toMatchObject({ markersFolded: 3 });
        const refreshed = await refreshDigestIndex(f.disk);
        expect(refreshed).toMatchObject({ complete: true, appliedSequence: 4, unmarkedLogs: 1 });
        await expectIndexMatches(f);
    });

    it("deletes the sealed logs' markers of a disk with no index; a later refresh builds it whole", async () => {
        const f = await newDisk();
        await applyLog(f, 1, [[spots[0]!, randomBytes(4 * KiB)]]);
        await applyLog(f, 2, [[spots[1]!, randomBytes(4 * KiB)]]);
        await markDirty(f.disk, 3, [{ offset: spots[2]!, length: 4 * KiB }]);
        expect(await compactDirtyMarkers(f.disk)).toEqual({ indexed: false, markersFolded: 0, markersDeleted: 2 });
        expect(await markerNames(f)).toEqual([3]);
        expect(await refreshDigestIndex(f.disk)).toMatchObject({ complete: true, appliedSequence: 2 });
        await expectIndexMatches(f);
    });

    it('deletes markers a refresh consumed but did not delete, and leaves a lone marker as it is', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await applyLog(f, 1, [[spots[0]!, randomBytes(4 * KiB)]]);
        const one = await container.getBlockBlobClient(dirtyMarkerBlobName(f.disk, 1)).downloadToBuffer();
        await refreshDigestIndex(f.disk);
        // A refresh that stopped between its header and its deletes leaves marker 1 behind.
        await container.getBlockBlobClient(dirtyMarkerBlobName(f.disk, 1)).upload(one, one.length);
        await applyLog(f, 2, [[spots[1]!, randomBytes(4 * KiB)]]);
        expect(await compactDirtyMarkers(f.disk)).toEqual({ indexed: true, markersFolded: 0, markersDeleted: 1 });
        expect(await markerNames(f)).toEqual([2]);
    });

    it('waits while a refresh holds the index, changing nothing', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await applyLog(f, 1, [[spots[0]!, randomBytes(4 * KiB)]]);
        await applyLog(f, 2, [[spots[1]!, randomBytes(4 * KiB)]]);
        await whileIndexLeased(f, () =>
            expect(compactDirtyMarkers(f.disk)).rejects.toMatchObject({ code: 'CONCURRENT_UPDATE' }),
        );
        expect(await markerNames(f)).toEqual([1, 2]);
    });

    it('refuses markers that do not say what their names say', async () => {
        const f = await newDisk();
        await refreshDigestIndex(f.disk);
        await applyLog(f, 1, [[spots[0]!, randomBytes(4 * KiB)]]);
        await f.replica.updateSequenceNumber('update', 5);
        const marker = (n: number) => container.getBlockBlobClient(dirtyMarkerBlobName(f.disk, n));
        // Log 1's marker under log 2's name.
        const one = await marker(1).downloadToBuffer();
        await marker(2).upload(one, one.length);
        await expect(refreshDigestIndex(f.disk)).rejects.toThrow(/holds log 1, its name says 2/);
        await marker(2).delete();
        // A compacted marker claiming logs past its own.
        const past = await compactedMarker(4, [[3, 5]], [[0, 4 * KiB]]);
        await marker(4).upload(past, past.length);
        await expect(refreshDigestIndex(f.disk)).rejects.toMatchObject({ code: 'RESYNC_INDEX_INVALID' });
        await expect(refreshDigestIndex(f.disk)).rejects.toThrow(/log run 3\+5 at offset 32 is not within 1–4/);
        // One whose length does not fit its counts.
        const short = (await compactedMarker(4, [[2, 3]], [[0, 4 * KiB]])).subarray(0, 60);
        await marker(4).upload(short, short.length);
        await expect(refreshDigestIndex(f.disk)).rejects.toThrow(/60 bytes do not hold 1 log runs and 1 ranges/);
        // A well-formed one is accepted, and stands for logs 2–4 (log 5 has no marker: a rebuild).
        const good = await compactedMarker(4, [[2, 3]], [[spots[1]!, 4 * KiB]]);
        await marker(4).upload(good, good.length);
        expect(await refreshDigestIndex(f.disk)).toMatchObject({ complete: true, unmarkedLogs: 1 });
    });

    it('widens ranges to whole leaves, then joins them until few enough remain', () => {
        const leaf = 4 * KiB;
        expect(
            widenRanges(
                [
                    { offset: 5000, length: 100 },
                    { offset: 8192, length: 1 },
                ],
                leaf,
                10,
            ),
        ).toEqual([{ offset: 4096, length: 8192 }]);
        const every: { offset: number; length: number }[] = [];
        for (let i = 0; i < 1000; i++) every.push({ offset: i * 3 * leaf + 17, length: 512 });
        const few = widenRanges(every, leaf, 7);
        expect(few.length).toBeLessThanOrEqual(7);
        for (const r of every) {
            expect(few.some((w) => w.offset <= r.offset && r.offset + r.length <= w.offset + w.length)).toBe(true);
        }
    });

    it('docs/resync.md states how often the merge compacts and how many ranges a compacted marker keeps', () => {
        const doc = readFileSync(`${__dirname}/../../../docs/resync.md`, 'utf8');
        expect(doc).toContain(`every ${DIRTY_MARKER_COMPACT_EVERY_LOGS} logs`);
        expect(doc).toContain(`${MAX_COMPACTED_MARKER_RANGES.toLocaleString('en-US')} ranges`);
    });
});
