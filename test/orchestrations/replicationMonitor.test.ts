import '../../functions/apiReplicationProtectedItems';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { listEvents } from '../../shared/state/events';
import { createProtectedItem, getProtectedItem, PROTECTION_STATES } from '../../shared/state/protectedItems';
import {
    MONITOR_EVENTS_PER_GENERATION,
    MonitorInput,
    MonitorStatus,
    REPLICATION_MONITOR,
} from '../../orchestrations/replicationMonitor';
import { LifecycleHarness, sampleVm, START } from './lifecycle/harness';

const MINUTE = 60_000;

async function protectedVm(h: LifecycleHarness, vmId: string, diskIds: string[]): Promise<string> {
    const at = START.toISOString();
    const vm = sampleVm(vmId);
    await createProtectedItem(h.scope, {
        vmId,
        siteId: 'site1',
        vmName: vm.name,
        generation: 2,
        policyName: 'gold',
        disks: vm.disks.filter((d) => diskIds.includes(d.diskId)),
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
        diskIds,
        copyFrequencySeconds: 300,
        monitoringSince: at,
        lastCapturedAt: at,
        lastHeartbeatAt: at,
        generation: 0,
    };
    const instanceId = instanceIds.replicationMonitor(vmId);
    await h.runtime.startNew(REPLICATION_MONITOR, { instanceId, input });
    await h.runtime.runUntilIdle();
    return instanceId;
}

describe('replication monitor', () => {
    let h: LifecycleHarness;
    beforeEach(() => {
        h = new LifecycleHarness();
    });
    afterEach(() => h.close());

    it('tracks RPO and health over time: no LogApplied → Warning → Critical; LogApplied → Normal again', async () => {
        const instanceId = await protectedVm(h, 'vmA', ['os', 'data']);
        const healthAt = async () => (await getProtectedItem(h.scope, 'vmA'))!;
        const heartbeat = () =>
            h.runtime.raiseEvent(instanceId, lifecycleEvents.heartbeat, {
                vmId: 'vmA',
                siteId: 'site1',
                at: h.clock.now().toISOString(),
                pendingLogBytes: {},
            });
        const seen: Record<number, string> = {};
        for (let minute = 5; minute <= 70; minute += 5) {
            await h.runtime.advance(5 * MINUTE);
            await heartbeat();
            await h.runtime.runUntilIdle();
            seen[minute] = (await healthAt()).replicationHealth;
        }
        // Copy every 5 min: Warning past 15 min of RPO, Critical past 60 min.
        expect(seen).toMatchObject({
            10: 'Normal',
            15: 'Normal',
            20: 'Warning',
            60: 'Warning',
            65: 'Critical',
            70: 'Critical',
        });
        const critical = await healthAt();
        expect(critical.healthReasons.map((r) => r.code)).toEqual(['RpoCriticalThresholdExceeded']);
        expect(critical.rpoSeconds).toBeGreaterThan(3600);

        const capturedAt = new Date(h.clock.now().getTime() - 30_000).toISOString();
        for (const diskId of ['os', 'data']) {
            await h.runtime.raiseEvent(instanceId, lifecycleEvents.logApplied, {
                vmId: 'vmA',
                diskId,
                sequence: 1,
                logId: `log-${diskId}`,
                bytes: 4096,
                capturedAt,
                appliedAt: h.clock.now().toISOString(),
            });
            await h.runtime.runUntilIdle();
        }
        const normal = await healthAt();
        expect(normal).toMatchObject({
            replicationHealth: 'Normal',
            healthReasons: [],
            lastCapturedAt: capturedAt,
            rpoSeconds: 30,
        });

        const changes = h.metrics
            .filter((m) => m.name === 'ReplicationHealthChanged')
            .map((m) => `${m.dimensions.from}→${m.dimensions.to}`);
        expect(changes).toEqual(['None→Normal', 'Normal→Warning', 'Warning→Critical', 'Critical→Normal']);
        const rpo = h.metrics.filter((m) => m.name === 'ReplicationRpoSeconds').map((m) => m.value);
        expect(Math.max(...rpo)).toBeGreaterThan(3600);
        expect(rpo[rpo.length - 1]).toBe(30);
        const events = await listEvents(h.scope, { vmId: 'vmA' });
        expect(events.filter((e) => e.kind === 'ReplicationHealthChanged').map((e) => e.severity)).toEqual([
            'Info',
            'Critical',
            'Warning',
            'Info',
        ]);
    });

    it('goes Critical with the reason on a resync request or a non-recoverable merge failure', async () => {
        const instanceId = await protectedVm(h, 'vmB', ['os']);
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.resyncRequired, {
            vmId: 'vmB',
            diskId: 'os',
            reason: 'ChainGap',
            detail: 'log 12 never arrived',
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        expect(await getProtectedItem(h.scope, 'vmB')).toMatchObject({
            replicationHealth: 'Critical',
            resynchronizationState: 'ResynchronizationRequired',
            resyncReason: 'ChainGap',
            healthReasons: [expect.objectContaining({ code: 'ResyncRequired' })],
        });
        await h.runtime.raiseEvent(instanceId, lifecycleEvents.mergeFailed, {
            vmId: 'vmB',
            diskId: 'os',
            code: 'CHAIN_BROKEN',
            message: 'log 13 does not follow 11',
            recoverable: false,
            at: h.clock.now().toISOString(),
        });
        await h.runtime.runUntilIdle();
        const item = await getProtectedItem(h.scope, 'vmB');
        expect(item?.healthReasons.map((r) => r.errorCode ?? r.code)).toEqual(['ResyncRequired', 'CHAIN_BROKEN']);
    });

    it('keeps its history bounded with continueAsNew over 1,000 replication cycles', async () => {
        const instanceId = await protectedVm(h, 'vmC', ['os']);
        let longest = 0;
        for (let cycle = 1; cycle <= 1000; cycle++) {
            await h.runtime.advance(30_000);
            await h.runtime.raiseEvent(instanceId, lifecycleEvents.logApplied, {
                vmId: 'vmC',
                diskId: 'os',
                sequence: cycle,
                logId: `log-${cycle}`,
                bytes: 512,
                capturedAt: new Date(h.clock.now().getTime() - 10_000).toISOString(),
                appliedAt: h.clock.now().toISOString(),
            });
            await h.runtime.runUntilIdle();
            longest = Math.max(longest, (await h.runtime.getStatus(instanceId))!.historyLength);
        }
        const status = (await h.runtime.getStatus(instanceId))!;
        expect(status.runtimeStatus).toBe('Running');
        // Each generation handles MONITOR_EVENTS_PER_GENERATION events, one wake per event here.
        expect((status.customStatus as MonitorStatus).generation).toBeGreaterThanOrEqual(
            1000 / MONITOR_EVENTS_PER_GENERATION - 1,
        );
        expect(longest).toBeLessThanOrEqual(10 * MONITOR_EVENTS_PER_GENERATION);
        expect((await getProtectedItem(h.scope, 'vmC'))?.replicationHealth).toBe('Normal');
    }, 180_000);
});
