import * as df from 'durable-functions';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { assessReplicationHealth } from '../../shared/health';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import { MONITOR_INPUT_VERSION } from '../../orchestrations/monitor/facts';
import type { ReplicationStatusRecord } from '../../orchestrations/monitor/refresh';
import {
    MONITOR_MAX_SLEEP_MS,
    REPLICATION_MONITOR,
    healthFactsOf,
    type MonitorInput,
    type MonitorStatus,
} from '../../orchestrations/replicationMonitor';
import { RECORD_RETRY } from '../../orchestrations/lifecycleActivities';
import { functionRegistry } from '../../packages/functions-local/src';
import { describeOnEngines, type EngineStatus } from '../support/durableEngines';
import { EngineHarness } from './lifecycle/engineHarness';
import { protectedVmRow } from './lifecycle/harness';

// The current monitor's sleeps and retries in scaled time, so a generation ends within a second on the real engine.
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

/** The previous monitor's input: no `version`, `recordedReasonCodes`, generation 41. */
function previousInputAt(vmId: string, at: string) {
    return {
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
}

const PREVIOUS_MONITOR_EVENTS = [
    lifecycleEvents.logApplied,
    lifecycleEvents.cycleComplete,
    lifecycleEvents.resyncRequired,
    lifecycleEvents.mergeFailed,
    lifecycleEvents.heartbeat,
    lifecycleEvents.cycleUploaded,
    lifecycleEvents.providerError,
    lifecycleEvents.resyncProgress,
    lifecycleEvents.resyncCompleted,
    lifecycleEvents.cancel,
];

/** Set by the previous code's stand-in once its generation waits, so the test knows when to "deploy". */
const WAITING_MARK = 'previous version waiting';

/**
 * The previous monitor, as it ran before input versioning (its first generation only: the test deploys the
 * current code while it waits): it recorded a ReplicationStatusRecord through `recordReplicationStatus`
 * (which returned nothing), then one timer at its unscaled wake time and one Task.any of its waiters.
 */
function* previousMonitor(context: df.OrchestrationContext): Generator<df.Task, unknown, unknown> {
    const state = context.df.getInput<MonitorInput>();
    const now = context.df.currentUtcDateTime;
    const assessment = assessReplicationHealth(healthFactsOf(state, now.toISOString()));
    const status: MonitorStatus = {
        health: assessment.health,
        rpoSeconds: assessment.rpoSeconds,
        reasons: assessment.reasons.map((r) => r.code),
        generation: state.generation,
    };
    context.df.setCustomStatus(status);
    const record: ReplicationStatusRecord = {
        vmId: state.vmId,
        siteId: state.siteId,
        at: now.toISOString(),
        assessment,
        generation: state.generation,
    };
    if (state.recordedHealth !== undefined) record.previousHealth = state.recordedHealth;
    if (state.lastCapturedAt !== undefined) record.lastCapturedAt = state.lastCapturedAt;
    if (state.lastRecoveryPoint) record.lastRecoveryPoint = state.lastRecoveryPoint;
    yield context.df.callActivityWithRetry('recordReplicationStatus', RECORD_RETRY, record);
    const threshold = assessment.nextThresholdAt !== undefined ? Date.parse(assessment.nextThresholdAt) : Infinity;
    const wakeAt = Math.max(now.getTime() + 1000, Math.min(now.getTime() + MONITOR_MAX_SLEEP_MS, threshold));
    const timer = context.df.createTimer(new Date(wakeAt));
    const waiters = PREVIOUS_MONITOR_EVENTS.map((name) => context.df.waitForExternalEvent(name));
    context.df.setCustomStatus({ ...status, mark: WAITING_MARK });
    yield context.df.Task.any([...waiters, timer]);
    throw new Error('the previous version ran past its first wait: the test deploys the current code before that');
}

// Registered under a name of its own so the registry wraps it as the worker would; the test swaps its handler in.
const PREVIOUS_MONITOR = 'replicationMonitorPreviousVersion';
df.app.orchestration(PREVIOUS_MONITOR, previousMonitor);

/** Runs `replicationMonitor` on the previous code until `deploy()` puts the current code back. */
function runPreviousVersion(): { deploy(): void } {
    const current = functionRegistry().get(REPLICATION_MONITOR);
    const original = current.handler;
    current.handler = functionRegistry().get(PREVIOUS_MONITOR).handler;
    return {
        deploy: () => {
            current.handler = original;
        },
    };
}

const isCurrentShape = (s: EngineStatus) => {
    const input = s.input as MonitorInput | undefined;
    return s.runtimeStatus === 'Running' && input?.version === MONITOR_INPUT_VERSION && input.generation >= 42;
};

/**
 * Monitors are eternal: when a new version is deployed they are mid-generation, started by the previous code.
 * The current code must replay a generation the previous code began (its record call returned nothing, its
 * timer was set at the unscaled wake time) and continue in its own input shape. On both engines the previous
 * code really runs: its handler stands under the monitor's name until the test deploys the current one.
 */
describeOnEngines('replication monitor: upgrade from the previous version', (engine, engineName) => {
    let h: EngineHarness;
    let vmId: string;
    let instanceId: string;
    let previousInput: ReturnType<typeof previousInputAt>;
    let n = 0;

    beforeEach(async () => {
        h = new EngineHarness(engine());
        vmId = `vmUp${engineName}${++n}`;
        instanceId = instanceIds.replicationMonitor(vmId);
        const at = h.now().toISOString();
        previousInput = previousInputAt(vmId, at);
        await createProtectedItem(h.scope, protectedVmRow(vmId, at, { replicationHealth: 'Critical' }));
    });
    afterEach(async () => {
        if ((await engine().status(instanceId))?.runtimeStatus === 'Running') {
            await engine().terminate(instanceId, 'test over');
        }
        h.close();
    });

    it('replays a generation the previous code began and continues in the current input shape', async () => {
        const previous = runPreviousVersion();
        try {
            await engine().startNew(REPLICATION_MONITOR, { instanceId, input: previousInput });
            await engine().waitFor(
                instanceId,
                (s) => (s.customStatus as { mark?: string } | null)?.mark === WAITING_MARK,
            );
        } finally {
            previous.deploy();
        }
        const waiting = (await engine().status(instanceId))!;
        expect(waiting.runtimeStatus).toBe('Running');
        expect(waiting.input).toMatchObject({ generation: 41, recordedReasonCodes: ['NonRecoverableError'] });

        const capturedAt = new Date(h.now().getTime() + 30_000).toISOString();
        await engine().raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId,
            cycleId: 'c1',
            recoveryPointId: `${vmId}:c1`,
            capturedAt,
        });
        // The current code's deadline (scaled) has passed: the generation ends and the next starts in its shape.
        const status = await engine().waitFor(instanceId, isCurrentShape);
        const input = status.input as MonitorInput;
        expect(input).toMatchObject({
            version: MONITOR_INPUT_VERSION,
            lastRecoveryPoint: { id: `${vmId}:c1` },
            blockingError: { code: 'VSS_WRITER_FAILED' },
        });
        expect(input).not.toHaveProperty('recordedReasonCodes');
        await h.until(
            async () => {
                const item = (await getProtectedItem(h.scope, vmId))!;
                return {
                    lastRecoveryPointId: item.lastRecoveryPointId,
                    blocking: item.healthReasons.find((r) => r.code === 'NonRecoverableError')?.errorCode,
                };
            },
            { lastRecoveryPointId: `${vmId}:c1`, blocking: 'VSS_WRITER_FAILED' },
        );
    });

    it('a monitor started with the previous input shape runs as a current one', async () => {
        await engine().startNew(REPLICATION_MONITOR, { instanceId, input: previousInput });
        await engine().raiseEvent(instanceId, lifecycleEvents.heartbeat, {
            vmId,
            siteId: 'site1',
            at: h.now().toISOString(),
            pendingLogBytes: {},
        });
        const status = await engine().waitFor(instanceId, isCurrentShape);
        const input = status.input as MonitorInput;
        expect(input).toMatchObject({ version: MONITOR_INPUT_VERSION, recordedHealth: 'Critical' });
        expect(input).not.toHaveProperty('recordedReasonCodes');
    });
});
