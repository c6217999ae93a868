import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { createProtectedItem, getProtectedItem, PROTECTION_STATES } from '../../shared/state/protectedItems';
import { REPLICATION_MONITOR, type MonitorInput } from '../../orchestrations/replicationMonitor';
import { holdNextActivityCall } from './fixtures/holdActivity';
import { LifecycleHarness, sampleVm, START } from './lifecycle/harness';

const MINUTE = 60_000;

/**
 * Ten events reach the monitor in one batch: they are raised while its record activity is held, so they queue
 * behind it and arrive with its completion, as the Azure Storage backend delivers them. Every one of them must
 * show on the protected item afterwards. Only client operations and the app's own activity are used, so the
 * test runs on either engine.
 */
describe('replication monitor: a burst of events in one batch', () => {
    let h: LifecycleHarness;
    beforeEach(() => {
        h = new LifecycleHarness();
    });
    afterEach(() => h.close());

    it('reflects all ten events (LogApplied ×4, CycleComplete, heartbeat, ProviderError, MergeFailed, ResyncRequired, ResyncProgress)', async () => {
        const vmId = 'vmBurst';
        const at = START.toISOString();
        const vm = sampleVm(vmId);
        await createProtectedItem(h.scope, {
            vmId,
            siteId: 'site1',
            vmName: vm.name,
            generation: 2,
            policyName: 'gold',
            disks: vm.disks,
            protectionState: 'Protected',
            protectionStateDescription: PROTECTION_STATES.Protected,
            resynchronizationState: 'None',
            replicationHealth: 'Normal',
            healthReasons: [],
            createdAt: at,
            updatedAt: at,
        });
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
        await h.runtime.startNew(REPLICATION_MONITOR, { instanceId, input });
        await h.runtime.runUntilIdle();
        // 40 minutes of silence: RPO and heartbeat both past their warning thresholds.
        await h.runtime.advance(40 * MINUTE);
        const now = h.clock.now().getTime();
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
            await h.runtime.raiseEvent(instanceId, first![0], first![1]);
            const running = h.runtime.runUntilIdle();
            await held.entered;
            for (const [name, payload] of rest) await h.runtime.raiseEvent(instanceId, name, payload);
            held.release();
            await running;
            await h.runtime.runUntilIdle();
        } finally {
            held.restore();
        }

        const item = (await getProtectedItem(h.scope, vmId))!;
        const codes = item.healthReasons.map((r) => r.code);
        expect({
            lastCapturedAt: item.lastCapturedAt,
            lastRecoveryPointId: item.lastRecoveryPointId,
            resynchronizationState: item.resynchronizationState,
            resyncReason: item.resyncReason,
            heartbeatMissing: codes.includes('ProviderHeartbeatMissing'),
            nonRecoverable: item.healthReasons.find((r) => r.code === 'NonRecoverableError')?.errorCode,
            mergeFailing: codes.includes('MergeFailing'),
            resyncRequired: codes.includes('ResyncRequired'),
            health: item.replicationHealth,
        }).toEqual({
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
        expect((await h.runtime.getStatus(instanceId))?.runtimeStatus).not.toBe('Failed');
    });
});
