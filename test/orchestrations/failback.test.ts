import '../../functions/apiFailover';
import '../../functions/apiReplicationProtectedItems';
import { StartFailbackEvent, FailbackLogReadyEvent } from '../../shared/contracts/messages';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { failoverPageBlob } from '../../shared/failover/failoverDisks';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { DRY_RUN_POWER_STATE_KEY, DryRunAzureVmControl } from '../../shared/failback/azureVm';
import { manifestOfDisk, rootDigestOfDisk, roundOneRanges } from '../../shared/failback/comparison';
import { setAzureVmControl } from '../../shared/failback/settings';
import { bufferSource, readHrlData, validateHrl } from '../../shared/hrl';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { Digester, seedFromHex } from '../../shared/resync/digest';
import { decodeDigestRequest } from '../../shared/resync/manifest';
import { getDrill } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { FAILBACK_TASKS } from '../../orchestrations/failback';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { describeOnEngines, isFinished } from '../support/durableEngines';
import { uniqueName } from '../support/azurite';
import { action, mapCorp, seedFailoverVm } from './lifecycle/failoverSeed';
import { EngineHarness } from './lifecycle/engineHarness';
import { holdNextActivityCall } from './fixtures/holdActivity';

// The provider timeout, the drill's copy poll and the retry delays a thousand times shorter: the 30-minute
// provider timeout takes 1.8 s, the day given to the tests that play the provider 86 s.
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';
const PLAYED_PROVIDER_TIMEOUT_MINUTES = '1440';

/**
 * Failback (Azurite, dry-run infrastructure): the provider's side is played here over the real grants (manifests
 * PUT to the write-only links, logs fetched with the read-only ones).
 */
describeOnEngines('failback: planned failover from Azure to on-premises (Azurite, dry-run ARM)', (engine) => {
    let h: EngineHarness;
    let restore: (() => void)[];

    beforeEach(() => {
        h = new EngineHarness(engine());
        restore = [
            setFailoverInfrastructure(new DryRunFailoverInfrastructure()),
            setAzureVmControl(new DryRunAzureVmControl(h.scope.conn)),
        ];
        process.env.FAILBACK_PROVIDER_TIMEOUT_MINUTES = PLAYED_PROVIDER_TIMEOUT_MINUTES;
    });
    afterEach(() => {
        delete process.env.FAILBACK_PROVIDER_TIMEOUT_MINUTES;
        for (const r of restore.reverse()) r();
        h.close();
    });
    const waitForInstance = (instanceId: string) => engine().waitFor(instanceId, isFinished);
    /** Until `done` holds: virtual time advances on the embedded engine, the real one is polled. */
    const until = async (done: () => boolean | Promise<boolean>) => {
        await h.eventually(async () => await done(), true);
    };

    const sent = <T>(type: string) =>
        h.published.filter((p) => p.input.type === type).map((p) => p.input.payload as unknown as T);

    /** A VM failed over (unplanned, dry run) and committed; its failover blobs per disk. */
    async function failedOverAndCommitted(vmId: string): Promise<{ drillId: string; blobs: Record<string, string> }> {
        await seedFailoverVm(h, vmId, [['c1', 0x11]]);
        await mapCorp(h);
        const fo = await action(h, vmId, 'unplannedFailover', { networkAdapters: [{ sourceNetwork: 'Corp' }] });
        expect(fo.status).toBe(202);
        await waitForInstance(instanceIds.failover(vmId));
        const commit = await action(h, vmId, 'failoverCommit');
        expect(commit.status).toBe(202);
        await waitForInstance(instanceIds.commitFailover(vmId));
        expect((await getProtectedItem(h.scope, vmId))?.protectionState).toBe('FailoverCommitted');
        const drillId = fo.jsonBody!.drillId as string;
        const drill = await getDrill(h.scope, vmId, drillId);
        const blobs = Object.fromEntries(
            ['os', 'data'].map((d) => [d, drill!.failoverBlobs.find((b) => b.endsWith(`/${d}.vhd`))!]),
        );
        return { drillId, blobs };
    }

    /** The on-premises disks: what the replica held at the failover (each disk's first 4 KiB 0x11). */
    function onPremDisks(): Record<string, Buffer> {
        const disks: Record<string, Buffer> = { os: Buffer.alloc(2 * 1024 * 1024), data: Buffer.alloc(1024 * 1024) };
        for (const d of Object.values(disks)) d.fill(0x11, 0, 4096);
        return disks;
    }

    async function azureWrite(blobName: string, offset: number, data: Buffer): Promise<void> {
        await failoverPageBlob(h.scope.conn.blob, blobName).uploadPages(data, offset, data.length);
    }

    /** Answers every StartFailback not answered yet: manifests of `disks` to the write-only links. */
    async function answerRounds(vmId: string, disks: Record<string, Buffer>, answered: Set<string>): Promise<number> {
        let total = 0;
        // Each answer lets the orchestration run (and ask the next round) before virtual time moves on.
        for (let n = await answerOnce(vmId, disks, answered); n > 0; n = await answerOnce(vmId, disks, answered)) {
            total += n;
            await h.engine.progress();
        }
        return total;
    }

    async function answerOnce(vmId: string, disks: Record<string, Buffer>, answered: Set<string>): Promise<number> {
        let n = 0;
        for (const e of sent<StartFailbackEvent>('StartFailback')) {
            for (const d of e.disks) {
                const key = `${e.phase}/${d.diskId}/${d.round}`;
                if (answered.has(key)) continue;
                answered.add(key);
                const g = { diskSize: d.sizeBytes, leafSize: e.leafSizeBytes, fanout: e.fanout, levels: e.levels };
                const digester = await Digester.create(seedFromHex(e.seed), g);
                const ranges = d.request
                    ? decodeDigestRequest(Buffer.from(d.request, 'base64'), g).ranges
                    : roundOneRanges(g);
                const src = bufferSource(disks[d.diskId]!);
                const manifest = await manifestOfDisk(src, digester, d.level, d.round, ranges);
                const put = await fetch(d.manifestUrl, {
                    method: 'PUT',
                    headers: { 'x-ms-blob-type': 'BlockBlob' },
                    body: manifest,
                });
                expect(put.status).toBe(201);
                await engine().raiseEvent(instanceIds.failback(vmId), lifecycleEvents.failbackMessage, {
                    type: 'FailbackManifestUploaded',
                    vmId,
                    failbackId: e.failbackId,
                    phase: e.phase,
                    diskId: d.diskId,
                    round: d.round,
                    at: h.now().toISOString(),
                });
                n++;
            }
        }
        return n;
    }

    /** Downloads a FailbackLogReady's logs with their read-only links and applies them; the roots after. */
    async function applyLogs(
        e: FailbackLogReadyEvent,
        disks: Record<string, Buffer>,
    ): Promise<{ diskId: string; rootDigest: string }[]> {
        const out = [];
        for (const d of e.disks) {
            const log = Buffer.from(await (await fetch(d.logUrl)).arrayBuffer());
            const src = bufferSource(log);
            const index = await validateHrl(src, { diskSize: disks[d.diskId]!.length });
            for await (const piece of readHrlData(src, index)) piece.data.copy(disks[d.diskId]!, piece.diskOffset);
            const g = {
                diskSize: disks[d.diskId]!.length,
                leafSize: e.leafSizeBytes,
                fanout: e.fanout,
                levels: e.levels,
            };
            out.push({
                diskId: d.diskId,
                rootDigest: await rootDigestOfDisk(
                    bufferSource(disks[d.diskId]!),
                    await Digester.create(seedFromHex(e.seed), g),
                ),
            });
        }
        return out;
    }

    async function playPhase(
        vmId: string,
        phase: 'Synchronize' | 'Final',
        disks: Record<string, Buffer>,
        answered: Set<string>,
        beforeApplied?: () => Promise<void>,
    ): Promise<FailbackLogReadyEvent> {
        const ready = () => sent<FailbackLogReadyEvent>('FailbackLogReady').find((e) => e.phase === phase);
        await until(async () => {
            await answerRounds(vmId, disks, answered);
            return ready() !== undefined;
        });
        const e = ready()!;
        const roots = await applyLogs(e, disks);
        await beforeApplied?.();
        await engine().raiseEvent(instanceIds.failback(vmId), lifecycleEvents.failbackMessage, {
            type: 'FailbackLogApplied',
            vmId,
            failbackId: e.failbackId,
            phase,
            disks: roots,
            at: h.now().toISOString(),
        });
        return e;
    }

    it('sends only the blocks the VM in Azure changed, shuts it down, sends the last ones, starts the VM on premises', async () => {
        const vm1 = uniqueName('vm1');
        const { blobs } = await failedOverAndCommitted(vm1);
        // The VM in Azure writes 8 KiB to os and 4 KiB to data.
        await azureWrite(blobs.os!, 64 * 1024, Buffer.alloc(8192, 0xa1));
        await azureWrite(blobs.data!, 512 * 1024, Buffer.alloc(4096, 0xa2));
        const started = await action(h, vm1, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
        expect(started.status).toBe(202);
        const { jobId, failbackId } = started.jsonBody! as { jobId: string; failbackId: string };
        expect((await getProtectedItem(h.scope, vm1))?.protectionStateDescription).toBe(
            'Planned failover from Azure in progress',
        );

        const disks = onPremDisks();
        const answered = new Set<string>();
        const first = await playPhase(vm1, 'Synchronize', disks, answered, async () => {
            // Still running in Azure: a write after the first difference comes in the last one.
            await azureWrite(blobs.os!, 1024 * 1024, Buffer.alloc(4096, 0xa3));
        });
        // 12 KiB of data, and each MS-HRL log's header and metadata blocks (12 KiB).
        expect(first.disks.map((d) => d.bytes).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(12 * 1024 + 2 * 12288);
        const last = await playPhase(vm1, 'Final', disks, answered);
        expect(last.disks.find((d) => d.diskId === 'os')!.bytes).toBeLessThanOrEqual(4096 + 12288);
        // The VM in Azure was deallocated before the last difference was taken.
        const os = await failoverPageBlob(h.scope.conn.blob, blobs.os!).getProperties();
        expect(os.metadata?.[DRY_RUN_POWER_STATE_KEY]).toBe('deallocated');
        await until(() => sent('CompleteFailback').length > 0);
        await engine().raiseEvent(instanceIds.failback(vm1), lifecycleEvents.failbackMessage, {
            type: 'FailbackCompleted',
            vmId: vm1,
            failbackId,
            startedAt: h.now().toISOString(),
            at: h.now().toISOString(),
        });
        await waitForInstance(instanceIds.failback(vm1));

        // The on-premises disks are the Azure disks, byte for byte.
        for (const d of ['os', 'data']) {
            const azure = await failoverPageBlob(h.scope.conn.blob, blobs[d]!).downloadToBuffer();
            expect(disks[d]!.equals(azure.subarray(0, disks[d]!.length))).toBe(true);
        }
        const job = await getJob(h.scope, jobId);
        expect(job).toMatchObject({ state: 'Succeeded', displayName: 'Planned failover from Azure to on-premises' });
        expect(job!.tasks.map((t) => t.name)).toEqual([...FAILBACK_TASKS.ForDownTime]);
        const item = await getProtectedItem(h.scope, vm1);
        expect(item).toMatchObject({
            protectionState: 'FailedBack',
            protectionStateDescription: 'Failed back to on-premises',
        });
    });

    it('fails with the reason when the provider is gone: the VM in Azure keeps running, nothing on premises changed', async () => {
        const vm2 = uniqueName('vm2');
        await failedOverAndCommitted(vm2);
        process.env.FAILBACK_PROVIDER_TIMEOUT_MINUTES = '30';
        const started = await action(h, vm2, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
        const { jobId } = started.jsonBody! as { jobId: string };
        await waitForInstance(instanceIds.failback(vm2));
        const job = await getJob(h.scope, jobId);
        expect(job?.state).toBe('Failed');
        expect(job?.errors[0]).toMatchObject({ code: 'TIMEOUT' });
        expect(job?.errors[0]?.message).toContain('No message from the provider for 30 minutes');
        expect(job?.errors[0]?.message).toContain('was not shut down and keeps running');
        expect(job?.errors[0]?.message).toContain('The on-premises disks were not changed.');
        expect(sent('CancelFailback')).toHaveLength(1);
        expect((await getProtectedItem(h.scope, vm2))?.protectionState).toBe('FailoverCommitted');
    });

    it('fails when the provider reports its read grant expired, starts the VM in Azure again after the shutdown, and can be run again', async () => {
        const vm3 = uniqueName('vm3');
        const { blobs } = await failedOverAndCommitted(vm3);
        await azureWrite(blobs.os!, 0, Buffer.alloc(4096, 0xb1));
        const started = await action(h, vm3, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
        const { jobId, failbackId } = started.jsonBody! as { jobId: string; failbackId: string };
        const disks = onPremDisks();
        const answered = new Set<string>();
        await playPhase(vm3, 'Synchronize', disks, answered);
        await until(async () => {
            const job = await getJob(h.scope, jobId);
            if (job?.state === 'Failed') throw new Error(JSON.stringify(job.errors));
            await answerRounds(vm3, disks, answered);
            return sent<FailbackLogReadyEvent>('FailbackLogReady').some((e) => e.phase === 'Final');
        });
        await engine().raiseEvent(instanceIds.failback(vm3), lifecycleEvents.failbackMessage, {
            type: 'FailbackFailed',
            vmId: vm3,
            failbackId,
            phase: 'Final',
            code: 'GRANT_EXPIRED',
            message: 'GET logUrl answered 403: the link expired.',
            disksUntouched: true,
            at: h.now().toISOString(),
        });
        await waitForInstance(instanceIds.failback(vm3));
        const job = await getJob(h.scope, jobId);
        expect(job?.errors[0]).toMatchObject({ code: 'GRANT_EXPIRED', task: 'Synchronizing the last changes' });
        expect(job?.errors[0]?.message).toContain('The virtual machine in Azure was started again.');
        const os = await failoverPageBlob(h.scope.conn.blob, blobs.os!).getProperties();
        expect(os.metadata?.[DRY_RUN_POWER_STATE_KEY]).toBe('running');
        expect((await getProtectedItem(h.scope, vm3))?.protectionState).toBe('FailoverCommitted');
        const again = await action(h, vm3, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
        expect(again.status).toBe(202);
    });

    it('reads every message of a batch: a Cancel that lands with a provider message is not lost', async () => {
        const vmId = uniqueName('vmb');
        await failedOverAndCommitted(vmId);
        // Holding the first StartFailback send lets both messages queue for the failback's next wait.
        const held = holdNextActivityCall('failbackSendStart');
        try {
            const started = await action(h, vmId, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
            const { jobId } = started.jsonBody! as { jobId: string };
            const running = engine().progress();
            await held.entered;
            const instanceId = instanceIds.failback(vmId);
            // A message of an earlier failback of the VM (skipped), then a Cancel: a wait that reads only the
            // Task.any's winner skips the first and loses the second, and waits for the provider's day-long timeout.
            await engine().raiseEvent(instanceId, lifecycleEvents.failbackMessage, {
                type: 'FailbackManifestUploaded',
                vmId,
                failbackId: 'an-earlier-failback',
                at: h.now().toISOString(),
            });
            await engine().raiseEvent(instanceId, lifecycleEvents.cancel, 'test: cancel');
            held.release();
            await running;
            await waitForInstance(instanceId);
            const job = await getJob(h.scope, jobId);
            expect(job?.state).toBe('Failed');
            expect(job?.errors[0]).toMatchObject({ code: 'CONFLICT' });
            expect(job?.errors[0]?.message).toContain('cancelled by the operator');
        } finally {
            held.restore();
        }
    });

    it('fails at the prerequisites when the VM in Azure is missing, naming it, and asks nothing of the provider', async () => {
        const vm4 = uniqueName('vm4');
        const { blobs } = await failedOverAndCommitted(vm4);
        await failoverPageBlob(h.scope.conn.blob, blobs.os!).deleteIfExists({ deleteSnapshots: 'include' });
        const started = await action(h, vm4, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
        await waitForInstance(instanceIds.failback(vm4));
        const job = await getJob(h.scope, started.jsonBody!.jobId as string);
        expect(job?.errors[0]).toMatchObject({ code: 'VM_NOT_FOUND', task: 'Prerequisites check for failback' });
        expect(job?.errors[0]?.message).toContain('is missing');
        expect(sent('StartFailback')).toEqual([]);
        expect((await getProtectedItem(h.scope, vm4))?.protectionState).toBe('FailoverCommitted');
    });

    it('full download (ForSynchronization): shuts the VM in Azure down first, sends every written block, checks the disks', async () => {
        const vm6 = uniqueName('vm6');
        const { blobs } = await failedOverAndCommitted(vm6);
        await azureWrite(blobs.data!, 256 * 1024, Buffer.alloc(4096, 0xc1));
        const started = await action(h, vm6, 'plannedFailover', {
            failoverDirection: 'RecoveryToPrimary',
            dataSyncOption: 'ForSynchronization',
        });
        expect(started.status).toBe(202);
        const { jobId, failbackId } = started.jsonBody! as { jobId: string; failbackId: string };
        await until(() => sent('FailbackLogReady').length > 0);
        expect(sent('StartFailback')).toEqual([]);
        const os = await failoverPageBlob(h.scope.conn.blob, blobs.os!).getProperties();
        expect(os.metadata?.[DRY_RUN_POWER_STATE_KEY]).toBe('deallocated');
        const ready = sent<FailbackLogReadyEvent>('FailbackLogReady')[0]!;
        expect(ready.phase).toBe('Final');
        const disks: Record<string, Buffer> = { os: Buffer.alloc(2 * 1024 * 1024), data: Buffer.alloc(1024 * 1024) };
        const roots = await applyLogs(ready, disks);
        await engine().raiseEvent(instanceIds.failback(vm6), lifecycleEvents.failbackMessage, {
            type: 'FailbackLogApplied',
            vmId: vm6,
            failbackId,
            phase: 'Final',
            disks: roots,
            at: h.now().toISOString(),
        });
        await until(() => sent('CompleteFailback').length > 0);
        await engine().raiseEvent(instanceIds.failback(vm6), lifecycleEvents.failbackMessage, {
            type: 'FailbackCompleted',
            vmId: vm6,
            failbackId,
            startedAt: h.now().toISOString(),
            at: h.now().toISOString(),
        });
        await waitForInstance(instanceIds.failback(vm6));
        const job = await getJob(h.scope, jobId);
        expect(job?.state).toBe('Succeeded');
        expect(job!.tasks.map((t) => t.name)).toEqual([...FAILBACK_TASKS.ForSynchronization]);
        for (const d of ['os', 'data']) {
            const azure = await failoverPageBlob(h.scope.conn.blob, blobs[d]!).downloadToBuffer();
            expect(disks[d]!.equals(azure.subarray(0, disks[d]!.length))).toBe(true);
        }
    });

    it('refuses a failback of a VM whose failover is not committed, listing what is allowed', async () => {
        const vm5 = uniqueName('vm5');
        await seedFailoverVm(h, vm5, [['c1', 0x11]]);
        const refused = await action(h, vm5, 'plannedFailover', { failoverDirection: 'RecoveryToPrimary' });
        expect(refused.status).toBe(409);
        expect(refused.jsonBody!.error.allowedOperations).toContain('PlannedFailover');
        const bad = await action(h, vm5, 'plannedFailover', { failoverDirection: 'Sideways' });
        expect(bad.status).toBe(400);
    });
});
