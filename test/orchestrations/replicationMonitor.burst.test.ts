import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import { REPLICATION_MONITOR, type MonitorInput } from '../../orchestrations/replicationMonitor';
import { describeOnEngines } from '../support/durableEngines';
import { holdNextActivityCall } from './fixtures/holdActivity';
import { EngineHarness } from './lifecycle/engineHarness';
import { protectedVmRow } from './lifecycle/harness';

const MINUTE = 60_000;

/**
 * Ten events reach the monitor in one batch: they are raised while its record activity is held, so they queue
 * behind it and arrive with its completion, as the Azure Storage backend delivers them. Every one of them must
 * show on the protected item afterwards. Only client operations and the app's own activity are used, so the
 * test runs on both engines (times are relative to the engine's clock: virtual on embedded, wall on dtfx).
 */
describeOnEngines('replication monitor: a burst of events in one batch', (engine) => {
    let h: EngineHarness;
    beforeEach(() => {
        h = new EngineHarness(engine());
    });
    afterEach(() => h.close());

    it('reflects all ten events (LogApplied ×4, CycleComplete, heartbeat, ProviderError, MergeFailed, ResyncRequired, ResyncProgress)', async () => {
        const vmId = `vmBurst${engine().name}`;
        // 40 minutes of silence before the burst: RPO and heartbeat both past their warning thresholds.
        const at = new Date(h.now().getTime() - 40 * MINUTE).toISOString();
        await createProtectedItem(h.scope, protectedVmRow(vmId, at));
        const input: MonitorInput = {
            vmId,
            siteId: 'site1',
            diskIds: ['os', 'data'],
            copyFrequencySeconds: 300,
            monitoringSince: at,
            lastCapturedAt: at,
            lastHeartbeatAt: at,
            generation: 0,
        };
        const instanceId = instanceIds.replicationMonitor(vmId);
        await engine().startNew(REPLICATION_MONITOR, { instanceId, input });
        await engine().waitFor(instanceId, (s) => s.customStatus !== null && s.customStatus !== undefined);
        const now = h.now().getTime();
        const iso = (offsetMs: number) => new Date(now + offsetMs).toISOString();
        const logApplied = (diskId: string, sequence: number, capturedAt: string) => ({
            vmId,
            diskId,
            sequence,
            logId: `log-${diskId}-${sequence}`,
            bytes: 4096,
            capturedAt,
            appliedAt: iso(-1000),
        });
        const burst: [string, unknown][] = [
            [lifecycleEvents.logApplied, logApplied('os', 1, iso(-20 * MINUTE))],
            [lifecycleEvents.logApplied, logApplied('data', 1, iso(-20 * MINUTE))],
            [
                lifecycleEvents.cycleComplete,
                { vmId, cycleId: 'c1', recoveryPointId: `${vmId}:c1`, capturedAt: iso(-20 * MINUTE) },
            ],
            [lifecycleEvents.heartbeat, { vmId, siteId: 'site1', at: iso(-2 * MINUTE), pendingLogBytes: {} }],
            [
                lifecycleEvents.providerError,
                { vmId, code: 'VSS_WRITER_FAILED', message: 'the VSS writer is gone', recoverable: false, at: iso(0) },
            ],
            [
                lifecycleEvents.mergeFailed,
                { vmId, diskId: 'os', code: 'THROTTLED', message: 'slow down', recoverable: true, at: iso(0) },
            ],
            [
                lifecycleEvents.resyncRequired,
                { vmId, diskId: 'data', reason: 'ChainGap', detail: 'log 3 never arrived', at: iso(0) },
            ],
            [lifecycleEvents.resyncProgress, { vmId, resyncId: 'r1', disks: { data: 10 }, at: iso(0) }],
            [lifecycleEvents.logApplied, logApplied('os', 2, iso(-18 * MINUTE))],
            [lifecycleEvents.logApplied, logApplied('data', 2, iso(-17 * MINUTE))],
        ];

        // The first event wakes the monitor; the record activity of that wake is held while the rest arrive.
        const held = holdNextActivityCall('recordReplicationStatus');
        try {
            const [first, ...rest] = burst;
            await engine().raiseEvent(instanceId, first![0], first![1]);
            const running = engine().progress();
            await held.entered;
            for (const [name, payload] of rest) await engine().raiseEvent(instanceId, name, payload);
            held.release();
            await running;
        } finally {
            held.restore();
        }

        const reflected = async () => {
            const item = (await getProtectedItem(h.scope, vmId))!;
            const codes = item.healthReasons.map((r) => r.code);
            return {
                lastCapturedAt: item.lastCapturedAt,
                lastRecoveryPointId: item.lastRecoveryPointId,
                resynchronizationState: item.resynchronizationState,
                resyncReason: item.resyncReason,
                heartbeatMissing: codes.includes('ProviderHeartbeatMissing'),
                nonRecoverable: item.healthReasons.find((r) => r.code === 'NonRecoverableError')?.errorCode,
                mergeFailing: codes.includes('MergeFailing'),
                resyncRequired: codes.includes('ResyncRequired'),
                health: item.replicationHealth,
            };
        };
        await h.until(reflected, {
            // min over the disks of their newest capture: os −18 min, data −17 min.
            lastCapturedAt: iso(-18 * MINUTE),
            lastRecoveryPointId: `${vmId}:c1`,
            resynchronizationState: 'ResynchronizationInitiated',
            resyncReason: 'ChainGap',
            heartbeatMissing: false,
            nonRecoverable: 'VSS_WRITER_FAILED',
            mergeFailing: true,
            resyncRequired: true,
            health: 'Critical',
        });
        expect((await engine().status(instanceId))?.runtimeStatus).not.toBe('Failed');
        await engine().terminate(instanceId, 'test over');
    });

    it('an event that lands while a wake runs is reflected without waiting for another event', async () => {
        const vmId = `vmLate${engine().name}`;
        const at = new Date(h.now().getTime() - MINUTE).toISOString();
        await createProtectedItem(h.scope, protectedVmRow(vmId, at));
        const instanceId = instanceIds.replicationMonitor(vmId);
        await engine().startNew(REPLICATION_MONITOR, {
            instanceId,
            input: {
                vmId,
                siteId: 'site1',
                diskIds: ['os', 'data'],
                copyFrequencySeconds: 300,
                monitoringSince: at,
                lastCapturedAt: at,
                lastHeartbeatAt: at,
                generation: 0,
            } satisfies MonitorInput,
        });
        await engine().waitFor(instanceId, (s) => s.customStatus !== null && s.customStatus !== undefined);
        const held = holdNextActivityCall('recordReplicationStatus');
        try {
            const now = h.now().toISOString();
            await engine().raiseEvent(instanceId, lifecycleEvents.heartbeat, {
                vmId,
                siteId: 'site1',
                at: now,
                pendingLogBytes: {},
            });
            const running = engine().progress();
            await held.entered;
            // The only event of its name: it resolves a waiter of the round that is no longer awaited.
            await engine().raiseEvent(instanceId, lifecycleEvents.resyncRequired, {
                vmId,
                diskId: 'data',
                reason: 'ChainGap',
                detail: 'log 3 never arrived',
                at: now,
            });
            held.release();
            await running;
        } finally {
            held.restore();
        }
        // No further event, and the monitor's timer is minutes away: it must already have recorded it.
        await h.until(
            async () => {
                const item = await getProtectedItem(h.scope, vmId);
                return { state: item?.resynchronizationState, reason: item?.resyncReason };
            },
            { state: 'ResynchronizationRequired', reason: 'ChainGap' },
        );
        await engine().terminate(instanceId, 'test over');
    });
});
