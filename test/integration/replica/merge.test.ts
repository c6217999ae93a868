import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeVhdFooter } from '../../../shared/vhd/footer';
import { newGuid } from '../../../shared/hrl/guid';
import { QUARANTINE_CONTAINER, REPLICA_LOGS_CONTAINER } from '../../../shared/replica/logBlob';
import { WHOLE_LOG_READ_SIZES } from '../../../shared/replica/mergeApply';
import { mergeUploadedLog, MergeOutcome, sweepChainGaps } from '../../../shared/replica/mergeLog';
import { QUARANTINE_METADATA_KEYS } from '../../../shared/replica/quarantine';
import { replicaPageBlob } from '../../../shared/replica/replicaDisk';
import { protectReplica } from '../../../shared/resync/replicaProtection';
import { chainGapTimeoutSeconds } from '../../../shared/replica/chainGap';
import { getReplicaDisk, replaceReplicaDisk } from '../../../shared/state/disks';
import { recordCycleReported, recordGrantsIssued } from '../../../shared/state/uploadLedger';
import { hasQemuImg, qemuCompare, randomBytesFrom, ReplicaHarness, seededRandom, SourceDisk } from './harness';

const MiB = 1024 * 1024;

// Each test moves tens of MiB through Azurite on a machine shared with other suites.
jest.setTimeout(180_000);

async function expectReplicaEqualsSource(h: ReplicaHarness, disk: SourceDisk): Promise<void> {
    const replica = await h.replicaBytes(disk.diskId);
    expect(replica.length).toBe(disk.virtualSize + 512);
    // Compare without printing megabytes on failure: find the first differing sector.
    const data = replica.subarray(0, disk.virtualSize);
    if (!data.equals(disk.bytes)) {
        let at = 0;
        while (at < data.length && data[at] === disk.bytes[at]) at++;
        throw new Error(`replica differs from the source at byte ${at}`);
    }
    expect(decodeVhdFooter(replica.subarray(disk.virtualSize)).currentSize).toBe(disk.virtualSize);
}

function statuses(outcomes: MergeOutcome[]): string[] {
    return outcomes.map((o) => o.status);
}

describe('merging uploaded logs into replica page blobs', () => {
    it('keeps the replica equal to the source over many seeded random cycles, as qemu-img confirms', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(20260301);
        const disk = await h.addDisk('disk0', 24 * MiB);
        for (let cycle = 1; cycle <= 8; cycle++) {
            disk.randomWrites(rand, 40);
            const cut = disk.cutLog({ dataChecksums: cycle % 2 === 0 });
            const name = await h.upload('disk0', cut, { cycleId: `c${cycle}`, consistency: 'CrashConsistent' });
            const [outcome] = await mergeUploadedLog(h.deps(), name);
            expect(outcome).toMatchObject({ status: 'applied', sequence: cycle });
            if (outcome?.status === 'applied') {
                // With data checksums, zero writes are known before reading: the plan is the minimum exactly.
                // Without, an all-zero write is only found after reading (and then becomes Clear Pages).
                if (cycle % 2 === 0) expect(outcome.metrics.putPageCalls).toBe(outcome.metrics.minPutPageCalls);
                expect(outcome.metrics.entries).toBe(40);
            }
            await expectReplicaEqualsSource(h, disk);
        }
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
        expect(row).toMatchObject({ sequence: 8, lastLogId: disk.lastLogId, state: 'Replicating', lastCycleId: 'c8' });
        expect((await replicaPageBlob(h.storage.blob, row.blobName).getProperties()).blobSequenceNumber).toBe(8);
        expect(h.notifier.named('logApplied')).toHaveLength(8);
        if (hasQemuImg) {
            const result = await qemuCompare(disk.bytes, await h.replicaBytes('disk0'));
            expect(result.output).toContain('Images are identical');
            expect(result.code).toBe(0);
        }
    });

    it('applies logs uploaded out of order and twice, in chain order, exactly once', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(7);
        const disk = await h.addDisk('disk0', 8 * MiB);
        const cuts = [];
        for (let i = 0; i < 6; i++) {
            disk.randomWrites(rand, 20);
            cuts.push(disk.cutLog());
        }
        const order = [2, 4, 1, 5, 3, 0];
        const seen: string[] = [];
        for (const k of order) {
            const name = await h.upload('disk0', cuts[k]!);
            seen.push(...statuses(await mergeUploadedLog(h.deps(), name)));
        }
        expect(seen.filter((s) => s === 'applied')).toHaveLength(6);
        expect(seen).toContain('waiting');
        // The provider uploads log 3 again after it was applied: acknowledged and removed, nothing rewritten.
        const again = await h.upload('disk0', cuts[2]!);
        expect(statuses(await mergeUploadedLog(h.deps(), again))).toEqual(['duplicate']);
        expect(await h.logExists(REPLICA_LOGS_CONTAINER, again)).toBe(false);
        await expectReplicaEqualsSource(h, disk);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.sequence).toBe(6);
        expect(h.notifier.named<{ sequence: number }>('logApplied').map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it('applies the logs of one disk in chain order when merges of all of them start at once', async () => {
        // Several merges run at once on an instance (host.json queues): nothing but the chain orders one disk's logs.
        const h = new ReplicaHarness();
        const rand = seededRandom(17);
        const disk = await h.addDisk('disk0', 8 * MiB);
        const names: string[] = [];
        for (let i = 0; i < 5; i++) {
            disk.randomWrites(rand, 20);
            names.push(await h.upload('disk0', disk.cutLog()));
        }
        const results = await Promise.all(names.reverse().map((name) => mergeUploadedLog(h.deps(), name)));
        const applied = results.flat().filter((o) => o.status === 'applied');
        expect(applied.map((o) => o.name).sort()).toEqual([...names].sort());
        for (const o of results.flat())
            expect(['applied', 'waiting', 'duplicate', 'stale', 'gone']).toContain(o.status);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.sequence).toBe(5);
        expect(h.notifier.named<{ sequence: number }>('logApplied').map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5]);
        await expectReplicaEqualsSource(h, disk);
    });

    it('reads a log of at most two read sizes once, whole, and a larger one where needed', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(23);
        const disk = await h.addDisk('disk0', 16 * MiB);
        type Metrics = { logReads: number; logBytesRead: number; bytes: number };
        // The harness reads 1 MiB at a time: a log under 2 MiB is read whole.
        for (let i = 0; i < 3; i++) disk.write(i * 3 * MiB, randomBytesFrom(rand, 64 * 1024));
        const [small] = await mergeUploadedLog(h.deps(), await h.upload('disk0', disk.cutLog()));
        expect(small).toMatchObject({ status: 'applied' });
        expect((small as { metrics: Metrics }).metrics.logReads).toBe(1);
        // Over 2 MiB: the header, the metadata, the checksums and the writes' read groups are read apart.
        for (let i = 0; i < 3; i++) disk.write(i * 3 * MiB + MiB, randomBytesFrom(rand, MiB));
        const [large] = await mergeUploadedLog(h.deps(), await h.upload('disk0', disk.cutLog()));
        expect(large).toMatchObject({ status: 'applied' });
        const m = (large as { metrics: Metrics }).metrics;
        expect(m.logReads).toBeGreaterThan(3);
        expect(m.logBytesRead).toBeGreaterThan(2 * m.bytes);
        await expectReplicaEqualsSource(h, disk);
        const doc = readFileSync(join(__dirname, '../../../docs/merge.md'), 'utf8');
        expect(doc).toContain(`\`WHOLE_LOG_READ_SIZES\` (${WHOLE_LOG_READ_SIZES})`);
    });

    it('rewrites the same bytes when a merge stopped after k writes is retried', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(99);
        const disk = await h.addDisk('disk0', 16 * MiB);
        disk.randomWrites(rand, 60);
        const name = await h.upload('disk0', disk.cutLog());
        const crash = new Error('worker lost');
        await expect(
            mergeUploadedLog(
                h.deps({
                    afterWrite: (_log, k) => {
                        if (k === 3) throw crash;
                    },
                }),
                name,
            ),
        ).rejects.toBe(crash);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk).toMatchObject({
            sequence: 0,
            applyingSequence: 1,
        });
        expect(statuses(await mergeUploadedLog(h.deps(), name))).toEqual(['applied']);
        await expectReplicaEqualsSource(h, disk);
    });

    it('finishes the row, without re-applying, when a crash fell between the sequence number and the row', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(5);
        const disk = await h.addDisk('disk0', 8 * MiB);
        disk.randomWrites(rand, 10);
        const first = disk.cutLog();
        await mergeUploadedLog(h.deps(), await h.upload('disk0', first));
        const before = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!;
        disk.randomWrites(rand, 10);
        const second = disk.cutLog();
        const name = await h.upload('disk0', second);
        expect(statuses(await mergeUploadedLog(h.deps(), name))).toEqual(['applied']);
        // Put back the state a crash right after Set Blob Properties leaves: blob at 2, row at 1 with the intent.
        const after = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!;
        await replaceReplicaDisk(
            h.scope,
            after,
            { ...before.disk, applyingSequence: 2, applyingLogId: second.logId },
            h.clock.now().toISOString(),
        );
        await h.upload('disk0', second);
        const writesBefore = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.appliedBytes;
        expect(statuses(await mergeUploadedLog(h.deps(), name))).toEqual(['finished']);
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
        expect(row).toMatchObject({ sequence: 2, lastLogId: second.logId });
        expect(row.applyingSequence).toBeUndefined();
        expect(row.appliedBytes).toBeGreaterThan(writesBefore);
        expect(await h.logExists(REPLICA_LOGS_CONTAINER, name)).toBe(false);
        await expectReplicaEqualsSource(h, disk);
    });

    it('applies a log once when two merges of it run at the same time', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(11);
        const disk = await h.addDisk('disk0', 16 * MiB);
        disk.randomWrites(rand, 80);
        const name = await h.upload('disk0', disk.cutLog());
        const results = await Promise.all([mergeUploadedLog(h.deps(), name), mergeUploadedLog(h.deps(), name)]);
        const all = results.flat().map((o) => o.status);
        expect(all.filter((s) => s === 'applied')).toHaveLength(1);
        for (const s of all) expect(['applied', 'duplicate', 'stale', 'gone']).toContain(s);
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
        expect(row.sequence).toBe(1);
        expect(h.notifier.named('logApplied')).toHaveLength(1);
        await expectReplicaEqualsSource(h, disk);
    });

    it('stops a stale worker with the sequence-number condition, leaving the newer bytes in place', async () => {
        const h = new ReplicaHarness();
        const rand = seededRandom(13);
        const disk = await h.addDisk('disk0', 8 * MiB);
        disk.randomWrites(rand, 30);
        const log1 = disk.cutLog();
        const name1 = await h.upload('disk0', log1);
        let release!: () => void;
        const paused = new Promise<void>((r) => (release = r));
        let pausedAt!: () => void;
        const reachedPause = new Promise<void>((r) => (pausedAt = r));
        const slow = mergeUploadedLog(
            h.deps({
                settings: { ...h.settings, concurrency: 1 },
                afterWrite: async (_log, k) => {
                    if (k === 1) {
                        pausedAt();
                        await paused;
                    }
                },
            }),
            name1,
        );
        await reachedPause;
        // Meanwhile another worker applies log 1, and then log 2 moves the replica on.
        expect(statuses(await mergeUploadedLog(h.deps(), name1))).toEqual(['applied']);
        disk.randomWrites(rand, 30);
        expect(statuses(await mergeUploadedLog(h.deps(), await h.upload('disk0', disk.cutLog())))).toEqual(['applied']);
        release();
        const [outcome] = await slow;
        expect(outcome).toMatchObject({ status: 'stale', sequence: 1 });
        expect((outcome as { detail: string }).detail).toMatch(/sequence number is no longer 0/);
        await expectReplicaEqualsSource(h, disk);
    });
});

describe('refusing logs that cannot be applied', () => {
    async function setup(seed: number): Promise<{ h: ReplicaHarness; disk: SourceDisk; before: Buffer }> {
        const h = new ReplicaHarness();
        const rand = seededRandom(seed);
        const disk = await h.addDisk('disk0', 8 * MiB);
        disk.randomWrites(rand, 20);
        await mergeUploadedLog(h.deps(), await h.upload('disk0', disk.cutLog()));
        disk.randomWrites(rand, 20);
        return { h, disk, before: await h.replicaBytes('disk0') };
    }

    async function expectQuarantined(
        h: ReplicaHarness,
        name: string,
        reason: string,
        code: RegExp,
        before: Buffer,
    ): Promise<void> {
        const [outcome] = await mergeUploadedLog(h.deps(), name);
        expect(outcome).toMatchObject({ status: 'quarantined', reason, diskMarked: true });
        expect((outcome as { code: string }).code).toMatch(code);
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk;
        expect(row).toMatchObject({ state: 'ResyncRequired', resyncReason: reason, sequence: 1 });
        expect(await h.logExists(REPLICA_LOGS_CONTAINER, name)).toBe(false);
        const moved = await h.storage.blob.getContainerClient(QUARANTINE_CONTAINER).getBlobClient(name).getProperties();
        expect(moved.metadata?.[QUARANTINE_METADATA_KEYS.reason]).toBe(reason);
        expect(moved.metadata?.[QUARANTINE_METADATA_KEYS.code]).toMatch(code);
        expect((await h.replicaBytes('disk0')).equals(before)).toBe(true);
        expect(h.notifier.named('resyncRequired')).toEqual([expect.objectContaining({ reason, diskId: 'disk0' })]);
    }

    it('quarantines a log whose data fails its checksum', async () => {
        const { h, disk, before } = await setup(21);
        const cut = disk.cutLog({ dataChecksums: true });
        cut.log.writeUInt8(cut.log[8192 + 10]! ^ 0xff, 8192 + 10); // a byte of the first entry's data
        await expectQuarantined(h, await h.upload('disk0', cut), 'InvalidLog', /HRL_DATA_CHECKSUM/, before);
    });

    it('quarantines a log whose metadata is corrupt', async () => {
        const { h, disk, before } = await setup(22);
        const cut = disk.cutLog();
        const at = cut.log.length - 4096 + 32 + 3; // inside the last metadata block's first entry
        cut.log.writeUInt8(cut.log[at]! ^ 0x01, at);
        await expectQuarantined(h, await h.upload('disk0', cut), 'InvalidLog', /HRL_/, before);
    });

    it('quarantines a log with an entry beyond the disk', async () => {
        const { h, disk, before } = await setup(23);
        disk.write(disk.virtualSize - 512, Buffer.alloc(512, 1));
        const cut = disk.cutLog();
        // Rebuild the log claiming a larger write at the very end of the disk.
        const { writeHrl } = await import('../../../shared/hrl/writer');
        const bad = writeHrl([{ diskOffset: disk.virtualSize - 512, data: Buffer.alloc(4096, 7) }], {
            uniqueId: cut.logId,
            previousUniqueId: (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.lastLogId,
            vhd2DataWriteGuid: disk.vhd2DataWriteGuid,
            closed: true,
        });
        await expectQuarantined(
            h,
            await h.upload('disk0', { ...cut, log: bad.log }),
            'InvalidLog',
            /HRL_ENTRY_OUT_OF_DISK/,
            before,
        );
    });

    it('quarantines a log whose PreviousUniqueId is not the last applied log', async () => {
        const { h, disk, before } = await setup(24);
        const cut = disk.cutLog({ previousUniqueId: newGuid() });
        await expectQuarantined(h, await h.upload('disk0', cut), 'ChainGap', /CHAIN_BROKEN/, before);
    });

    it('quarantines a log that was not closed cleanly (EOLLocation 0)', async () => {
        const { h, disk, before } = await setup(25);
        const cut = disk.cutLog({ closed: false });
        await expectQuarantined(h, await h.upload('disk0', cut), 'LogNotClosed', /HRL_NOT_CLOSED/, before);
    });

    it('quarantines a log whose Vhd2DataWriteGuid changed (the disk was modified offline)', async () => {
        const { h, disk, before } = await setup(26);
        const cut = disk.cutLog({ vhd2DataWriteGuid: newGuid() });
        await expectQuarantined(h, await h.upload('disk0', cut), 'DiskChangedOffline', /DISK_CHANGED_OFFLINE/, before);
    });

    it('never breaks the chain for a slow upload: staged blocks or a valid grant keep it waiting, then both apply', async () => {
        const { h, disk } = await setup(28);
        const slow = disk.cutLog();
        disk.randomWrites(seededRandom(2), 5);
        const next = disk.cutLog();
        const deps = () => h.deps({ copyFrequencyFor: async () => 30 });
        expect(statuses(await mergeUploadedLog(deps(), await h.upload('disk0', next)))).toEqual(['waiting']);
        // Hours pass. A grant for the slow log is valid (it was asked for again): nothing says it is lost.
        h.clock.advance(2 * 3600);
        const grant = (offsetSeconds: number) => [
            {
                diskId: 'disk0',
                sequence: slow.sequence,
                expiresOn: new Date(h.clock.now().getTime() + offsetSeconds * 1000).toISOString(),
            },
        ];
        await recordGrantsIssued(h.scope, h.vmId, grant(1800));
        expect(statuses(await sweepChainGaps(deps()))).toEqual(['waiting']);
        // Half of it is staged as blocks; then even a report past it and expired grants do not break the chain.
        const blob = h.storage.blob
            .getContainerClient(REPLICA_LOGS_CONTAINER)
            .getBlockBlobClient(h.logName('disk0', slow.sequence, slow.logId));
        const half = Math.floor(slow.log.length / 2);
        await blob.stageBlock('YmxvY2sw', slow.log.subarray(0, half), half);
        await recordCycleReported(h.scope, h.vmId, 'c3', [{ diskId: 'disk0', sequence: next.sequence }], 'x');
        await recordGrantsIssued(h.scope, h.vmId, grant(-1));
        expect(statuses(await sweepChainGaps(deps()))).toEqual(['waiting']);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk.state).toBe('Replicating');
        // The upload completes: both logs apply, in order, and no resync was asked for.
        await blob.stageBlock('YmxvY2sx', slow.log.subarray(half), slow.log.length - half);
        await blob.commitBlockList(['YmxvY2sw', 'YmxvY2sx']);
        expect(statuses(await mergeUploadedLog(deps(), blob.name))).toEqual(['applied', 'applied']);
        expect(h.notifier.named('resyncRequired')).toEqual([]);
        await expectReplicaEqualsSource(h, disk);
    });

    it('breaks the chain once a missing log is known lost (the provider reported it), then a resync log starts a new chain', async () => {
        const { h, disk, before } = await setup(27);
        const missing = disk.cutLog();
        disk.randomWrites(seededRandom(1), 5);
        const third = await h.upload('disk0', disk.cutLog());
        expect(statuses(await mergeUploadedLog(h.deps(), third))).toEqual(['waiting']);
        // The wait: three cycles of the VM's policy (5 min), at least the lower bound (600 s here).
        const timeout = chainGapTimeoutSeconds(300, h.settings.gapMinSeconds);
        h.clock.advance(timeout - 10);
        await recordCycleReported(h.scope, h.vmId, 'c2', [{ diskId: 'disk0', sequence: missing.sequence }], 'x');
        expect(statuses(await sweepChainGaps(h.deps({ copyFrequencyFor: async () => 300 })))).toEqual(['waiting']);
        h.clock.advance(20);
        const [outcome] = await sweepChainGaps(h.deps({ copyFrequencyFor: async () => 300 }));
        expect(outcome).toMatchObject({ status: 'quarantined', reason: 'ChainGap', code: 'CHAIN_GAP' });
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk).toMatchObject({ state: 'ResyncRequired' });
        expect((await h.replicaBytes('disk0')).equals(before)).toBe(true);
        // The late log 2 of the broken chain is refused too: only a resync log applies now.
        const late = await h.upload('disk0', missing);
        expect(await mergeUploadedLog(h.deps(), late)).toEqual([
            expect.objectContaining({ status: 'quarantined', diskMarked: false }),
        ]);
        // Resync: the provider sends the differing blocks as log 2 of a new chain (PreviousUniqueId not checked).
        const resync = new SourceDisk('disk0', disk.virtualSize);
        disk.bytes.copy(resync.bytes);
        const resyncLogId = newGuid();
        const { writeHrl } = await import('../../../shared/hrl/writer');
        const full = writeHrl([{ diskOffset: 0, data: Buffer.from(disk.bytes) }], {
            uniqueId: resyncLogId,
            previousUniqueId: newGuid(),
            vhd2DataWriteGuid: newGuid(),
            closed: true,
        });
        // The metadata flag alone does not make a resync log: it is refused while no resync runs.
        const early = await h.upload('disk0', { log: full.log, logId: resyncLogId, sequence: 2 }, { resync: true });
        expect(await mergeUploadedLog(h.deps(), early)).toEqual([
            expect.objectContaining({ status: 'quarantined', diskMarked: false }),
        ]);
        // The pipeline's resync protects the replica (its run expects log 2); then the same log applies.
        await protectReplica(h.scope, {
            vmId: h.vmId,
            resyncId: 'r1',
            reason: 'ChainGap',
            at: h.clock.now().toISOString(),
        });
        const name = await h.upload('disk0', { log: full.log, logId: resyncLogId, sequence: 2 });
        expect(statuses(await mergeUploadedLog(h.deps(), name))).toEqual(['applied']);
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk).toMatchObject({
            state: 'Replicating',
            sequence: 2,
            lastLogId: resyncLogId,
        });
        await expectReplicaEqualsSource(h, disk);
    });

    it('refuses a log that claims resync=true in its metadata while no resync runs (chain checks still apply)', async () => {
        const { h, disk, before } = await setup(31);
        disk.randomWrites(seededRandom(2), 6);
        const forged = disk.cutLog({ previousUniqueId: newGuid() });
        const name = await h.upload('disk0', forged, { resync: true });
        const [outcome] = await mergeUploadedLog(h.deps(), name);
        expect(outcome).toMatchObject({ status: 'quarantined', reason: 'ChainGap', code: 'CHAIN_BROKEN' });
        expect((await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk).toMatchObject({ sequence: 1 });
        expect((await h.replicaBytes('disk0')).equals(before)).toBe(true);
    });
});
