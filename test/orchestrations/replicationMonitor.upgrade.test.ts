import { assessReplicationHealth } from '../../shared/health';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import { MONITOR_INPUT_VERSION } from '../../orchestrations/monitor/facts';
import { REPLICATION_MONITOR, healthFactsOf, type MonitorInput } from '../../orchestrations/replicationMonitor';
import {
    HistoryEventType,
    DurableRuntime,
    MemoryInstanceStore,
    functionRegistry,
} from '../../packages/functions-local/src';
import { LifecycleHarness, protectedVmRow, START } from './lifecycle/harness';

const MINUTE = 60_000;

/**
 * Monitors are eternal: when a new version is deployed they are mid-generation, started by the previous code.
 * The previous monitor (before input versioning) wrote an input without `version`, with `recordedReasonCodes`,
 * and began each generation with `recordReplicationStatus(record)` returning nothing, then one timer and a
 * Task.any of its ten waiters. The current code must replay such a generation and continue in its own shape.
 */
describe('replication monitor: upgrade from the previous version', () => {
    let h: LifecycleHarness;
    let store: MemoryInstanceStore;
    let runtime: DurableRuntime;
    const vmId = 'vmUp';
    const instanceId = instanceIds.replicationMonitor(vmId);
    const at = START.toISOString();
    const previousInput = {
        vmId,
        siteId: 'site1',
        diskIds: ['os', 'data'],
        copyFrequencySeconds: 300,
        monitoringSince: at,
        lastCapturedAt: at,
        diskCapturedAt: { os: at, data: at },
        lastRecoveryPoint: { id: `${vmId}:c0`, at },
        lastHeartbeatAt: at,
        blockingError: { code: 'VSS_WRITER_FAILED', message: 'the VSS writer is gone', at },
        recordedHealth: 'Critical',
        recordedReasonCodes: ['NonRecoverableError'],
        generation: 41,
    };

    beforeEach(async () => {
        h = new LifecycleHarness();
        store = new MemoryInstanceStore();
        runtime = new DurableRuntime({ registry: functionRegistry(), clock: h.clock, store });
        await createProtectedItem(h.scope, protectedVmRow(vmId, at, { replicationHealth: 'Critical' }));
    });
    afterEach(async () => {
        await runtime.close();
        await h.close();
    });

    /** Turns the first generation the current code began into the one the previous code wrote. */
    async function asPreviousVersionWroteIt(): Promise<void> {
        const state = (await store.get(instanceId))!;
        state.input = JSON.stringify(previousInput);
        const assessment = assessReplicationHealth(healthFactsOf(previousInput as MonitorInput, at));
        for (const event of state.history) {
            if (event.EventType === HistoryEventType.ExecutionStarted) event.Input = state.input;
            if (event.EventType === HistoryEventType.TaskScheduled) {
                event.Input = JSON.stringify({ vmId, siteId: 'site1', at, assessment, generation: 41 });
            }
            // The previous record activity returned nothing.
            if (event.EventType === HistoryEventType.TaskCompleted) event.Result = 'null';
        }
        await store.put(state);
    }

    it('replays a generation the previous code began and continues in the current input shape', async () => {
        await runtime.startNew(REPLICATION_MONITOR, { instanceId, input: previousInput });
        await runtime.runUntilIdle();
        await asPreviousVersionWroteIt();

        h.clock.advanceBy(MINUTE);
        await runtime.raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId,
            cycleId: 'c1',
            recoveryPointId: `${vmId}:c1`,
            capturedAt: new Date(START.getTime() + 30_000).toISOString(),
        });
        await runtime.runUntilIdle();
        // The deadline passes: the generation ends and the next one starts from the carried state.
        await runtime.advance(16 * MINUTE);

        const status = (await runtime.getStatus(instanceId))!;
        expect(status.runtimeStatus).toBe('Running');
        const input = status.input as MonitorInput;
        expect(input).toMatchObject({
            version: MONITOR_INPUT_VERSION,
            lastRecoveryPoint: { id: `${vmId}:c1` },
            blockingError: { code: 'VSS_WRITER_FAILED' },
        });
        expect(input.generation).toBeGreaterThanOrEqual(42);
        expect(input).not.toHaveProperty('recordedReasonCodes');
        const item = (await getProtectedItem(h.scope, vmId))!;
        expect(item.lastRecoveryPointId).toBe(`${vmId}:c1`);
        expect(item.healthReasons.find((r) => r.code === 'NonRecoverableError')?.errorCode).toBe('VSS_WRITER_FAILED');
    });

    it('a monitor started with the previous input shape runs as a current one', async () => {
        await runtime.startNew(REPLICATION_MONITOR, { instanceId, input: previousInput });
        await runtime.runUntilIdle();
        await runtime.raiseEvent(instanceId, lifecycleEvents.heartbeat, {
            vmId,
            siteId: 'site1',
            at: h.clock.now().toISOString(),
            pendingLogBytes: {},
        });
        await runtime.runUntilIdle();
        await runtime.advance(16 * MINUTE);
        const input = (await runtime.getStatus(instanceId))!.input as MonitorInput;
        expect(input).toMatchObject({ version: MONITOR_INPUT_VERSION, recordedHealth: 'Critical' });
        expect(input.generation).toBeGreaterThanOrEqual(42);
        expect(input).not.toHaveProperty('recordedReasonCodes');
    });
});
