import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../functions/apiReplicationProtectedItems';
import '../../orchestrations/resync';
import { ResyncResult, ResyncStatus, RESYNC_DIGEST_REQUEST_EVENT } from '../../orchestrations/resync/events';
import { getResyncRun } from '../../shared/resync/runs';
import { OutgoingProviderEvent, providerEventBody } from '../../shared/contracts/publisher';
import { bufferSource, HrlWriteEntry, newGuid, writeHrl } from '../../shared/hrl';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { REPLICA_LOGS_CONTAINER, REPLICAS_CONTAINER } from '../../shared/replica/logBlob';
import { mergeSettingsFromEnv, mergeUploadedLog } from '../../shared/replica/mergeLog';
import { RecordingNotifier } from '../../shared/replica/notifier';
import { registerReplicaDisk, replicaBlobName } from '../../shared/replica/replicaDisk';
import { encodeDigestRequest } from '../../shared/resync/manifest';
import { ProviderComparison, writeDifferingBlocks } from '../../shared/resync/provider';
import { getReplicaDisk, updateReplicaDisk } from '../../shared/state/disks';
import { getJob } from '../../shared/state/jobs';
import { createProtectedItem, getProtectedItem, PROTECTION_STATES } from '../../shared/state/protectedItems';
import { createRecoveryPoint, listRecoveryPoints } from '../../shared/state/recoveryPoints';
import { DURABLE_TIME_SCALE_SETTING, scaledMs } from '../../shared/durableTime';
import { describeOnEngines, isFinished } from '../support/durableEngines';
import { uniqueName } from '../support/azurite';
import { EngineHarness } from './lifecycle/engineHarness';

// The provider timeout and the retry delays a thousand times shorter: the 6 h provider timeout takes 21.6 s, a
// one-minute retry 60 ms.
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';
/** Where the test plays the provider: a day's silence allowed (86 s) between its messages. */
const PLAYED_PROVIDER_TIMEOUT_MINUTES = 1440;

const MiB = 1024 * 1024;
const DISK = 8 * MiB;
const MINUTE = 60_000;
const DISKS = ['d0', 'd1'];

interface StartResyncDiskPayload {
    diskId: string;
    sizeBytes: number;
    resyncSequence: number;
    round: number;
    manifestUrl: string;
}

/** A protected VM whose replicas (real page blobs, real disk rows) drifted from the source disks. */
class DriftedVm {
    readonly vmId = uniqueName('vm');
    readonly replicaBefore = new Map<string, Buffer>();
    readonly source = new Map<string, Buffer>();
    constructor(readonly h: EngineHarness) {}

    async create(): Promise<void> {
        const h = this.h;
        const at = h.now().toISOString();
        await createProtectedItem(h.scope, {
            vmId: this.vmId,
            siteId: 'site1',
            vmName: this.vmId,
            generation: 2,
            policyName: 'gold',
            disks: DISKS.map((diskId, i) => ({
                diskId,
                sizeBytes: DISK,
                logicalSectorBytes: 512,
                isOsDisk: i === 0,
            })),
            protectionState: 'Protected',
            protectionStateDescription: PROTECTION_STATES.Protected,
            resynchronizationState: 'ResynchronizationRequired',
            resyncReason: 'ChainGap',
            replicationHealth: 'Critical',
            healthReasons: [],
            createdAt: at,
            updatedAt: at,
        });
        for (const diskId of DISKS) {
            await registerReplicaDisk(h.scope, {
                vmId: this.vmId,
                siteId: 'site1',
                diskId,
                sizeBytes: DISK,
                createdAt: h.now(),
            });
            const replica = Buffer.alloc(DISK);
            randomBytes(5 * MiB).copy(replica, 0);
            await this.blob(diskId).uploadPages(replica.subarray(0, 5 * MiB), 0, 5 * MiB);
            const source = Buffer.from(replica);
            for (let i = 0; i < 12; i++) randomBytes(4096).copy(source, ((i * 97) % 2048) * 4096);
            randomBytes(300 * 1024).copy(source, 6 * MiB + 8192);
            source.fill(0, 2 * MiB, 2 * MiB + 64 * 1024);
            this.replicaBefore.set(diskId, replica);
            this.source.set(diskId, source);
        }
        // A recovery point from before the resync: it must be gone afterwards (the baseline changed).
        const snap = await this.blob('d0').createSnapshot();
        await createRecoveryPoint(h.scope, {
            vmId: this.vmId,
            cycleId: 'old-cycle',
            recoveryPointId: `${this.vmId}:old-cycle`,
            consistency: 'CrashConsistent',
            capturedAt: at,
            createdAt: at,
            disks: { d0: { blobName: replicaBlobName(this.vmId, 'd0'), snapshot: snap.snapshot!, sequence: 0 } },
        });
    }

    blob(diskId: string) {
        return this.h.scope.conn.blob
            .getContainerClient(REPLICAS_CONTAINER)
            .getPageBlobClient(replicaBlobName(this.vmId, diskId));
    }

    async replicaData(diskId: string): Promise<Buffer> {
        return this.blob(diskId).downloadToBuffer(0, DISK);
    }

    get instanceId(): string {
        return instanceIds.resync(this.vmId);
    }

    /** Starts the resync; the provider timeout is the product's default unless given. */
    async start(providerTimeoutMinutes?: number): Promise<void> {
        await this.h.engine.startNew('resync', {
            instanceId: this.instanceId,
            input: {
                vmId: this.vmId,
                siteId: 'site1',
                reason: 'ChainGap',
                requestedAt: this.h.now().toISOString(),
                ...(providerTimeoutMinutes !== undefined ? { providerTimeoutMinutes } : {}),
            },
        });
        await this.h.engine.progress();
    }

    async status(): Promise<ResyncStatus> {
        return (await this.h.engine.status(this.instanceId))!.customStatus as ResyncStatus;
    }

    /** Until the resync's status satisfies `done` (virtual time advancing on the embedded engine). */
    async waitForStatus(done: (s: ResyncStatus | undefined) => boolean): Promise<ResyncStatus> {
        const s = await this.h.engine.waitFor(this.instanceId, (e) => done(e.customStatus as ResyncStatus | undefined));
        return s.customStatus as ResyncStatus;
    }

    startEvents(): OutgoingProviderEvent[] {
        return this.h.published.map((p) => p.input).filter((e) => e.type === 'StartResync' && e.vmId === this.vmId);
    }
}

/**
 * The provider's side, with shared/resync's provider module: answers StartResync round by round (digest requests
 * raised as the command handler would), writes the resync log, uploads it with resync=true and lets the merge
 * core apply it. Returns what it sent.
 */
async function provideResync(vm: DriftedVm, options: { complete: boolean }): Promise<Record<string, number>> {
    const h = vm.h;
    const first = vm.startEvents()[0]!;
    const resyncId = first.payload.resyncId as string;
    const sent: Record<string, number> = {};
    for (const disk of first.payload.disks as StartResyncDiskPayload[]) {
        const source = bufferSource(vm.source.get(disk.diskId)!);
        const fetchManifest = async (url: string): Promise<Buffer> => {
            const res = await fetch(url);
            expect(res.status).toBe(200);
            return Buffer.from(await res.arrayBuffer());
        };
        const cmp = await ProviderComparison.begin(source, await fetchManifest(disk.manifestUrl));
        let round = 1;
        for (let req = cmp.nextRequest(); req; req = cmp.nextRequest()) {
            round++;
            const before = vm.startEvents().length;
            await h.engine.raiseEvent(vm.instanceId, RESYNC_DIGEST_REQUEST_EVENT, {
                vmId: vm.vmId,
                resyncId,
                diskId: disk.diskId,
                round,
                request: encodeDigestRequest(req).toString('base64'),
            });
            await h.until(async () => vm.startEvents().length > before, true);
            const answer = vm.startEvents().slice(before)[0]!;
            const answered = (answer.payload.disks as StartResyncDiskPayload[])[0]!;
            expect(answered).toMatchObject({ diskId: disk.diskId, round });
            await cmp.compare(await fetchManifest(answered.manifestUrl));
        }
        const entries: HrlWriteEntry[] = [];
        sent[disk.diskId] = await writeDifferingBlocks(source, cmp.differingRanges(), {
            add: (diskOffset, data) => {
                entries.push({ diskOffset, data });
            },
        });
        const logId = newGuid();
        const { log } = writeHrl(entries, { uniqueId: logId });
        const name = `site1/${vm.vmId}/${disk.diskId}/${disk.resyncSequence}-${logId}.hrl`;
        const container = h.scope.conn.blob.getContainerClient(REPLICA_LOGS_CONTAINER);
        await container.createIfNotExists();
        await container.getBlockBlobClient(name).uploadData(log, { metadata: { resync: 'true' } });
        const outcomes = await mergeUploadedLog(
            {
                scope: h.scope,
                notifier: new RecordingNotifier(),
                clock: h.engine.clock,
                settings: mergeSettingsFromEnv(),
            },
            name,
        );
        expect(outcomes[0]).toMatchObject({ status: 'applied', sequence: disk.resyncSequence });
        await h.engine.raiseEvent(vm.instanceId, lifecycleEvents.resyncProgress, {
            vmId: vm.vmId,
            resyncId,
            disks: { [disk.diskId]: 60 },
            at: h.now().toISOString(),
        });
        await h.engine.progress();
    }
    if (options.complete) {
        await h.engine.raiseEvent(vm.instanceId, lifecycleEvents.resyncCompleted, {
            vmId: vm.vmId,
            resyncId,
            disks: Object.fromEntries(DISKS.map((d) => [d, 100])),
            at: h.now().toISOString(),
        });
        await h.engine.waitFor(vm.instanceId, isFinished);
    }
    return sent;
}

describeOnEngines('resync orchestration', (engine, engineName) => {
    let h: EngineHarness;
    let dir: string;
    beforeAll(async () => {
        dir = await mkdtemp(join(tmpdir(), 'resync-orch-'));
    });
    afterAll(async () => {
        await rm(dir, { recursive: true, force: true });
    });
    beforeEach(async () => {
        h = new EngineHarness(engine());
        await h.seedSiteAndPolicy();
    });
    afterEach(() => h.close());

    it('resynchronizes every disk end to end: replica equals the source, new baseline, job Succeeded', async () => {
        const vm = new DriftedVm(h);
        await vm.create();
        await vm.start(PLAYED_PROVIDER_TIMEOUT_MINUTES);
        await vm.waitForStatus((s) => s?.stage === 'WaitingForProvider');

        const [start] = vm.startEvents();
        expect(start).toMatchObject({
            siteId: 'site1',
            vmId: vm.vmId,
            payload: { vmId: vm.vmId, diskIds: DISKS, blockSizeBytes: 4096, reason: 'ChainGap' },
        });
        // The event passes the published StartResync schema, as the Service Bus and local publishers require.
        expect(providerEventBody(start!)).toMatchObject({ type: 'StartResync', version: 1 });
        for (const d of start!.payload.disks as StartResyncDiskPayload[]) {
            expect(d).toMatchObject({ sizeBytes: DISK, resyncSequence: 1, round: 1 });
            expect(d.manifestUrl).toMatch(/sp=r&/);
        }
        expect(await vm.status()).toMatchObject({ stage: 'WaitingForProvider' });
        // Only resync logs apply while the disks are protected.
        expect((await getReplicaDisk(h.scope, vm.vmId, 'd0'))?.disk.state).toBe('ResyncRequired');
        expect((await getProtectedItem(h.scope, vm.vmId))?.resynchronizationState).toBe('ResynchronizationInitiated');

        const sent = await provideResync(vm, { complete: true });
        // The provider walked down the tree: later rounds answered its digest requests.
        expect(vm.startEvents().length).toBeGreaterThan(2);
        // Far less than the disk travelled.
        for (const d of DISKS) expect(sent[d]).toBeLessThan(DISK / 8);

        const done = (await engine().status(vm.instanceId))!;
        expect(done.runtimeStatus).toBe('Completed');
        const result = done.output as ResyncResult;
        expect(result.result).toBe('Completed');
        for (const d of DISKS) {
            const replica = await vm.replicaData(d);
            expect(replica.equals(vm.source.get(d)!)).toBe(true);
            const row = (await getReplicaDisk(h.scope, vm.vmId, d))!.disk;
            expect(row).toMatchObject({ state: 'Replicating', sequence: 1 });
        }
        if (existsSync('/usr/bin/qemu-img')) {
            const raw = join(dir, `${vm.vmId}.raw`);
            const vhd = join(dir, `${vm.vmId}.vhd`);
            await writeFile(raw, vm.source.get('d1')!);
            await writeFile(vhd, await vm.blob('d1').downloadToBuffer());
            expect(
                execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', raw, vhd], { encoding: 'utf8' }),
            ).toMatch(/identical/);
        }

        const job = (await getJob(h.scope, result.jobId))!;
        expect(job).toMatchObject({ kind: 'Resynchronize', displayName: 'Resynchronize', state: 'Succeeded' });
        expect(job.tasks.every((t) => t.state === 'Succeeded')).toBe(true);
        const points = await listRecoveryPoints(h.scope, vm.vmId);
        expect(points.map((p) => p.recoveryPointId)).toEqual([result.recoveryPointId]);
        expect(points[0]!.disks.d0?.sequence).toBe(1);
        const item = (await getProtectedItem(h.scope, vm.vmId))!;
        expect(item).toMatchObject({
            resynchronizationState: 'ResynchronizationCompleted',
            lastRecoveryPointId: result.recoveryPointId,
        });
        expect(item.resyncReason).toBeUndefined();
        expect((await getResyncRun(h.scope, vm.vmId, result.resyncId))?.state).toBe('Completed');
    });

    it('cancel after the resync log was merged restores every replica to its snapshot and leaves it resync-required', async () => {
        const vm = new DriftedVm(h);
        await vm.create();
        await vm.start(PLAYED_PROVIDER_TIMEOUT_MINUTES);
        await vm.waitForStatus((s) => s?.stage === 'WaitingForProvider');
        await provideResync(vm, { complete: false });
        expect((await vm.replicaData('d0')).equals(vm.source.get('d0')!)).toBe(true);

        await engine().raiseEvent(vm.instanceId, lifecycleEvents.cancel, 'Operator cancelled.');
        const done = await engine().waitFor(vm.instanceId, isFinished);
        expect((done.output as ResyncResult).result).toBe('Cancelled');
        for (const d of DISKS) {
            expect((await vm.replicaData(d)).equals(vm.replicaBefore.get(d)!)).toBe(true);
            expect((await vm.blob(d).getProperties()).blobSequenceNumber).toBe(0);
            const row = (await getReplicaDisk(h.scope, vm.vmId, d))!.disk;
            expect(row).toMatchObject({ state: 'ResyncRequired', sequence: 0, resyncReason: 'ChainGap' });
        }
        const job = (await getJob(h.scope, (done.output as ResyncResult).jobId))!;
        expect(job.state).toBe('Cancelled');
        expect((await getProtectedItem(h.scope, vm.vmId))?.resynchronizationState).toBe('ResynchronizationRequired');
        // The old recovery point is still there: nothing of the baseline changed.
        expect((await listRecoveryPoints(h.scope, vm.vmId)).map((p) => p.cycleId)).toEqual(['old-cycle']);
    });

    it('a protection step that fails half-way is retried on the schedule without redoing the disk it finished', async () => {
        const vm = new DriftedVm(h);
        await vm.create();
        // d1 is in the middle of a log: the snapshot must wait for it (recoverable), d0 is done first.
        await updateReplicaDisk(h.scope, vm.vmId, 'd1', () => ({ applyingSequence: 1, applyingLogId: 'x' }), '');
        await vm.start(PLAYED_PROVIDER_TIMEOUT_MINUTES);
        const status = await vm.waitForStatus((s) => s?.retry !== undefined);
        const failedAt = h.now();
        expect(status.stage).toBe('ProtectingReplica');
        // On the real engine the next attempts (60 ms apart, scaled) may already have failed too.
        expect(status.retry).toMatchObject({ code: 'CONCURRENT_UPDATE' });
        if (engineName === 'embedded') expect(status.retry?.attempt).toBe(1);
        const run = (await getResyncRun(h.scope, vm.vmId, status.resyncId))!;
        expect(Object.keys(run.disks)).toEqual(['d0']);
        const firstSnapshot = run.disks.d0!.snapshot;
        const job = (await getJob(h.scope, status.jobId))!;
        expect(job.tasks[0]?.detail).toMatch(/Attempt \d+ failed \(CONCURRENT_UPDATE/);

        await updateReplicaDisk(
            h.scope,
            vm.vmId,
            'd1',
            () => ({ applyingSequence: undefined, applyingLogId: undefined }),
            '',
        );
        await vm.waitForStatus((s) => s?.stage === 'WaitingForProvider');
        // The retry comes 1 minute (scaled) after the first attempt: exactly, on the virtual clock.
        if (engineName === 'embedded') expect(h.now().getTime() - failedAt.getTime()).toBe(scaledMs(MINUTE));
        const after = (await getResyncRun(h.scope, vm.vmId, status.resyncId))!;
        expect(after.disks.d0!.snapshot).toBe(firstSnapshot);
        expect(Object.keys(after.disks).sort()).toEqual(DISKS);
        const snapshots: string[] = [];
        for await (const b of h.scope.conn.blob
            .getContainerClient(REPLICAS_CONTAINER)
            .listBlobsFlat({ prefix: `${vm.vmId}/d0.vhd`, includeSnapshots: true })) {
            if (b.snapshot) snapshots.push(b.snapshot);
        }
        // The old recovery point's snapshot and one protection snapshot: the retry did not take a second one.
        expect(snapshots).toHaveLength(2);

        await provideResync(vm, { complete: true });
        expect((await engine().status(vm.instanceId))?.runtimeStatus).toBe('Completed');
        for (const d of DISKS) expect((await vm.replicaData(d)).equals(vm.source.get(d)!)).toBe(true);
    });

    it('rolls back and fails the job when the provider stays silent past the timeout', async () => {
        const vm = new DriftedVm(h);
        await vm.create();
        const startedAt = h.now();
        await vm.start();
        const done = await engine().waitFor(vm.instanceId, isFinished);
        // The product's 6 h, scaled: exactly on the virtual clock; on the real engine no sooner than the up to a
        // second early that its timers may fire (docs/durable-runtime.md).
        if (engineName === 'embedded') expect(h.now().getTime() - startedAt.getTime()).toBe(scaledMs(360 * MINUTE));
        else expect(h.now().getTime() - startedAt.getTime()).toBeGreaterThanOrEqual(scaledMs(360 * MINUTE) - 1000);
        // The message names the product's duration, not the scaled one.
        expect(done.output).toMatchObject({
            result: 'Failed',
            error: {
                code: 'TIMEOUT',
                message: expect.stringContaining('No message from the provider for 360 minutes'),
            },
        });
        const job = (await getJob(h.scope, (done.output as ResyncResult).jobId))!;
        expect(job.state).toBe('Failed');
        expect(job.tasks[3]).toMatchObject({ name: 'Transferring differing blocks', state: 'Failed' });
        expect((await getReplicaDisk(h.scope, vm.vmId, 'd0'))?.disk.state).toBe('ResyncRequired');
        expect((await vm.replicaData('d0')).equals(vm.replicaBefore.get('d0')!)).toBe(true);
    });

    it('"resync now" through the API starts the orchestration at once', async () => {
        const vm = new DriftedVm(h);
        await vm.create();
        const res = await h.http('apiResyncProtectedItem', {
            method: 'POST',
            path: `replicationProtectedItems/${vm.vmId}/resync`,
            params: { vmId: vm.vmId },
        });
        expect(res.status).toBe(202);
        expect(res.jsonBody).toMatchObject({ instanceId: vm.instanceId });
        await vm.waitForStatus((s) => s?.stage === 'WaitingForProvider');
        expect(vm.startEvents()[0]?.payload.reason).toBe('OperatorRequested');
        const again = await h.http('apiResyncProtectedItem', {
            method: 'POST',
            path: `replicationProtectedItems/${vm.vmId}/resync`,
            params: { vmId: vm.vmId },
        });
        expect(again.jsonBody).toMatchObject({ alreadyRunning: true });
        await engine().terminate(vm.instanceId, 'test over');
    });
});
