import '../../functions/apiReplicationProtectedItems';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { listEvents } from '../../shared/state/events';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import {
    MONITOR_EVENTS_PER_GENERATION,
    MonitorInput,
    MonitorStatus,
    REPLICATION_MONITOR,
} from '../../orchestrations/replicationMonitor';
import { describeOnEngines, itOn, type EngineStatus, type EngineUnderTest } from '../support/durableEngines';
import { EngineHarness } from './lifecycle/engineHarness';
import { protectedVmRow } from './lifecycle/harness';

const MINUTE = 60_000;

/** A Protected VM whose newest capture was at `capturedAt`, and its monitor started now. */
async function protectedVm(
    h: EngineHarness,
    vmId: string,
    diskIds: string[],
    capturedAt: Date = h.now(),
): Promise<string> {
    const at = capturedAt.toISOString();
    const row = protectedVmRow(vmId, at);
    await createProtectedItem(h.scope, { ...row, disks: row.disks.filter((d) => diskIds.includes(d.diskId)) });
    const input: MonitorInput = {
        vmId,
        siteId: 'site1',
        diskIds,
        copyFrequencySeconds: 300,
        monitoringSince: at,
        lastCapturedAt: at,
        lastHeartbeatAt: h.now().toISOString(),
        generation: 0,
    };
    const instanceId = instanceIds.replicationMonitor(vmId);
    await h.engine.startNew(REPLICATION_MONITOR, { instanceId, input });
    await h.engine.waitFor(instanceId, (s) => s.customStatus !== null && s.customStatus !== undefined);
    return instanceId;
}

const monitorStatus = (s: EngineStatus) => s.customStatus as MonitorStatus | null | undefined;

async function stop(engine: EngineUnderTest, instanceId: string): Promise<void> {
    if ((await engine.status(instanceId))?.runtimeStatus === 'Running') await engine.terminate(instanceId, 'test over');
}

/**
 * On both engines: times are relative to the engine's clock (virtual on embedded, wall on dtfx); a health change
 * that needs time to pass waits on the monitor's own timer (the next threshold), which the embedded runtime
 * reaches by advancing virtual time and the real engine by waiting seconds.
 */
describeOnEngines('replication monitor', (engine, engineName) => {
    let h: EngineHarness;
    let n = 0;
    const vm = (name: string) => `${name}${engineName}${++n}`;
    beforeEach(() => {
        h = new EngineHarness(engine());
    });
    afterEach(() => h.close());

    it('health follows RPO on its own timer (Warning, Critical past 60 min) and a LogApplied makes it Normal again', async () => {
        const vmId = vm('vmA');
        // Newest capture 60 min minus 20 s ago: Warning now, Critical once the monitor's timer reaches the threshold
        // (20 s: on a loaded machine the real engine may take seconds to run the first wake).
        const instanceId = await protectedVm(
            h,
            vmId,
            ['os', 'data'],
            new Date(h.now().getTime() - 60 * MINUTE + 20_000),
        );
        expect(monitorStatus((await engine().status(instanceId))!)?.health).toBe('Warning');
        const critical = await engine().waitFor(instanceId, (s) => monitorStatus(s)?.health === 'Critical');
        expect(monitorStatus(critical)?.reasons).toEqual(['RpoCriticalThresholdExceeded']);
        const item = (await getProtectedItem(h.scope, vmId))!;
        expect(item.replicationHealth).toBe('Critical');
        expect(item.healthReasons.map((r) => r.code)).toEqual(['RpoCriticalThresholdExceeded']);
        expect(item.rpoSeconds).toBeGreaterThan(3600);

        const capturedAt = new Date(h.now().getTime() - 30_000).toISOString();
        for (const diskId of ['os', 'data']) {
            await engine().raiseEvent(instanceId, lifecycleEvents.logApplied, {
                vmId,
                diskId,
                sequence: 1,
                logId: `log-${diskId}`,
                bytes: 4096,
                capturedAt,
                appliedAt: h.now().toISOString(),
            });
        }
        await h.until(
            async () => {
                const row = (await getProtectedItem(h.scope, vmId))!;
                return {
                    health: row.replicationHealth,
                    reasons: row.healthReasons,
                    lastCapturedAt: row.lastCapturedAt,
                };
            },
            { health: 'Normal', reasons: [], lastCapturedAt: capturedAt },
        );
        // Measured from the capture at the wake: 30 s on the virtual clock, a little more in wall time.
        const rpo = (await getProtectedItem(h.scope, vmId))!.rpoSeconds!;
        expect(rpo).toBeGreaterThanOrEqual(30);
        expect(rpo).toBeLessThan(900);

        const changes = h.metrics
            .filter((m) => m.name === 'ReplicationHealthChanged')
            .map((m) => `${m.dimensions.from}→${m.dimensions.to}`);
        expect(changes).toEqual(['None→Warning', 'Warning→Critical', 'Critical→Normal']);
        const rpos = h.metrics.filter((m) => m.name === 'ReplicationRpoSeconds').map((m) => m.value);
        expect(Math.max(...rpos)).toBeGreaterThan(3600);
        expect(rpos[rpos.length - 1]).toBe(rpo);
        // One event per change (their order is the metrics'; the last two may share an instant on the virtual clock).
        const events = await listEvents(h.scope, { vmId });
        const severities = events.filter((e) => e.kind === 'ReplicationHealthChanged').map((e) => e.severity);
        expect(severities.sort()).toEqual(['Critical', 'Info', 'Warning']);
        await stop(engine(), instanceId);
    });

    it('goes Critical with the reason on a resync request or a non-recoverable merge failure', async () => {
        const vmId = vm('vmB');
        const instanceId = await protectedVm(h, vmId, ['os']);
        await engine().raiseEvent(instanceId, lifecycleEvents.resyncRequired, {
            vmId,
            diskId: 'os',
            reason: 'ChainGap',
            detail: 'log 12 never arrived',
            at: h.now().toISOString(),
        });
        const facts = async () => {
            const item = (await getProtectedItem(h.scope, vmId))!;
            return {
                health: item.replicationHealth,
                resync: item.resynchronizationState,
                reason: item.resyncReason,
                reasons: item.healthReasons.map((r) => r.errorCode ?? r.code),
            };
        };
        await h.until(facts, {
            health: 'Critical',
            resync: 'ResynchronizationRequired',
            reason: 'ChainGap',
            reasons: ['ResyncRequired'],
        });
        await engine().raiseEvent(instanceId, lifecycleEvents.mergeFailed, {
            vmId,
            diskId: 'os',
            code: 'CHAIN_BROKEN',
            message: 'log 13 does not follow 11',
            recoverable: false,
            at: h.now().toISOString(),
        });
        await h.until(facts, {
            health: 'Critical',
            resync: 'ResynchronizationRequired',
            reason: 'ChainGap',
            reasons: ['ResyncRequired', 'CHAIN_BROKEN'],
        });
        await stop(engine(), instanceId);
    });

    it('continues as new every MONITOR_EVENTS_PER_GENERATION events and loses none of 25 sent back to back', async () => {
        const vmId = vm('vmD');
        const instanceId = await protectedVm(h, vmId, ['os']);
        const base = h.now().getTime();
        const capturedAt = (i: number) => new Date(base - 25_000 + i * 1000).toISOString();
        for (let i = 1; i <= 25; i++) {
            await engine().raiseEvent(instanceId, lifecycleEvents.logApplied, {
                vmId,
                diskId: 'os',
                sequence: i,
                logId: `log-${i}`,
                bytes: 512,
                capturedAt: capturedAt(i),
                appliedAt: h.now().toISOString(),
            });
        }
        await h.until(async () => (await getProtectedItem(h.scope, vmId))?.lastCapturedAt, capturedAt(25));
        // At least one generation ended on its event count; how many depends on how the engine batched the events.
        const status = await engine().waitFor(instanceId, (s) => (monitorStatus(s)?.generation ?? 0) >= 1);
        expect(status.runtimeStatus).toBe('Running');
        expect((await getProtectedItem(h.scope, vmId))?.replicationHealth).toBe('Normal');
        await stop(engine(), instanceId);
    });

    // Needs the embedded runtime: the exact RPO walk over 70 virtual minutes and the history length.
    itOn(
        'embedded',
        engineName,
        'walks RPO over 70 minutes: Normal to 15 min, Warning from 20, Critical from 65',
        async () => {
            const runtime = engine().embedded!;
            const vmId = vm('vmW');
            const instanceId = await protectedVm(h, vmId, ['os', 'data']);
            const seen: Record<number, string> = {};
            for (let minute = 5; minute <= 70; minute += 5) {
                await runtime.advance(5 * MINUTE);
                await runtime.raiseEvent(instanceId, lifecycleEvents.heartbeat, {
                    vmId,
                    siteId: 'site1',
                    at: h.now().toISOString(),
                    pendingLogBytes: {},
                });
                await runtime.runUntilIdle();
                seen[minute] = (await getProtectedItem(h.scope, vmId))!.replicationHealth;
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
            await stop(engine(), instanceId);
        },
    );

    itOn(
        'embedded',
        engineName,
        'keeps its history bounded with continueAsNew over 400 replication cycles (20 generations)',
        async () => {
            const runtime = engine().embedded!;
            const vmId = vm('vmC');
            const instanceId = await protectedVm(h, vmId, ['os']);
            let longest = 0;
            for (let cycle = 1; cycle <= 400; cycle++) {
                await runtime.advance(30_000);
                await runtime.raiseEvent(instanceId, lifecycleEvents.logApplied, {
                    vmId,
                    diskId: 'os',
                    sequence: cycle,
                    logId: `log-${cycle}`,
                    bytes: 512,
                    capturedAt: new Date(h.now().getTime() - 10_000).toISOString(),
                    appliedAt: h.now().toISOString(),
                });
                await runtime.runUntilIdle();
                longest = Math.max(longest, (await runtime.getStatus(instanceId))!.historyLength);
            }
            const status = (await runtime.getStatus(instanceId))!;
            expect(status.runtimeStatus).toBe('Running');
            // Each generation handles MONITOR_EVENTS_PER_GENERATION events, one wake per event here.
            expect((status.customStatus as MonitorStatus).generation).toBeGreaterThanOrEqual(
                400 / MONITOR_EVENTS_PER_GENERATION - 1,
            );
            expect(longest).toBeLessThanOrEqual(10 * MONITOR_EVENTS_PER_GENERATION);
            expect((await getProtectedItem(h.scope, vmId))?.replicationHealth).toBe('Normal');
            await stop(engine(), instanceId);
        },
        600_000,
    );
});
