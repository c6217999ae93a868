import {
    DurableRuntime,
    eventTypeName,
    functionRegistry,
    HistoryEventType,
    LocalPlatformError,
    retryDelayMs,
    VirtualClock,
} from '../../packages/functions-local/src';
import { flakyAttempts } from './fixtures/failures';
import './fixtures/children';

const START = new Date('2025-03-01T10:00:00.000Z');
const MINUTE = 60_000;
const at = (ms: number) => new Date(START.getTime() + ms).toISOString();

describe('DurableRuntime: retries, failures and hangs', () => {
    let clock: VirtualClock;
    let runtime: DurableRuntime;

    beforeEach(() => {
        flakyAttempts.clear();
        clock = new VirtualClock(START);
        runtime = new DurableRuntime({ registry: functionRegistry(), clock });
    });
    afterEach(() => runtime.close());

    it('retries with the backoff delays on durable timers, each taking the next id', async () => {
        const id = await runtime.startNew('fixtureRetry', {
            instanceId: 'retry-ok',
            input: { key: 'k1', succeedOnAttempt: 3, maxAttempts: 5 },
        });
        await runtime.runUntilIdle();
        expect(flakyAttempts.get('k1')).toBe(1);
        await runtime.advance(MINUTE - 1);
        expect(flakyAttempts.get('k1')).toBe(1);
        await runtime.advance(1);
        expect(flakyAttempts.get('k1')).toBe(2);
        await runtime.advance(2 * MINUTE);
        expect(await runtime.getStatus(id)).toMatchObject({
            runtimeStatus: 'Completed',
            output: { ok: true, attempt: 3 },
        });

        const history = await runtime.getHistory(id);
        const ids = history
            .filter((e) =>
                [HistoryEventType.TaskScheduled, HistoryEventType.TimerCreated].includes(e.EventType as 4 | 10),
            )
            .map((e) => `${eventTypeName(e.EventType)}#${e.EventId}`);
        expect(ids).toEqual([
            'TaskScheduled#0',
            'TimerCreated#1',
            'TaskScheduled#2',
            'TimerCreated#3',
            'TaskScheduled#4',
        ]);
        const timers = history.filter((e) => e.EventType === HistoryEventType.TimerCreated).map((e) => e.FireAt);
        expect(timers).toEqual([at(MINUTE), at(3 * MINUTE)]);
    });

    it('after the last attempt fails, waits one more retry timer, then the orchestrator sees the failure', async () => {
        const id = await runtime.startNew('fixtureRetry', {
            instanceId: 'retry-exhausted',
            input: { key: 'k2', succeedOnAttempt: 0, maxAttempts: 3 },
        });
        await runtime.advance(MINUTE + 2 * MINUTE);
        expect(flakyAttempts.get('k2')).toBe(3);
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Running');
        await runtime.advance(4 * MINUTE - 1);
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Running');
        await runtime.advance(1);
        const status = await runtime.getStatus(id);
        expect(status?.runtimeStatus).toBe('Completed');
        expect(status?.output).toEqual({
            ok: false,
            message: "Activity function 'fixtureFlaky' failed: attempt 3 of k2 failed ",
        });
        expect(flakyAttempts.get('k2')).toBe(3);
    });

    it('computes the framework retry delays: backoff, cap and timeout', () => {
        const options = { firstRetryIntervalInMilliseconds: 1000, maxNumberOfAttempts: 9, backoffCoefficient: 3 };
        expect([1, 2, 3].map((n) => retryDelayMs(options, n, START, START))).toEqual([1000, 3000, 9000]);
        expect(retryDelayMs({ ...options, maxRetryIntervalInMilliseconds: 5000 }, 3, START, START)).toBe(5000);
        const later = new Date(START.getTime() + 10_000);
        expect(retryDelayMs({ ...options, retryTimeoutInMilliseconds: 10_000 }, 1, START, later)).toBeUndefined();
        expect(retryDelayMs({ firstRetryIntervalInMilliseconds: 500, maxNumberOfAttempts: 2 }, 4, START, START)).toBe(
            500,
        );
    });

    it('a manual backoff with durable timers wakes at exactly the requested times', async () => {
        const id = await runtime.startNew('fixtureManualBackoff', {
            input: { key: 'k3', succeedOnAttempt: 4, delaysMs: [MINUTE, 2 * MINUTE, 4 * MINUTE] },
        });
        await runtime.advanceUntil(async () => (await runtime.getStatus(id))?.runtimeStatus === 'Completed');
        expect((await runtime.getStatus(id))?.output).toEqual({
            attempt: 4,
            waits: [at(MINUTE), at(3 * MINUTE), at(7 * MINUTE)],
        });
        expect(clock.now().toISOString()).toBe(at(7 * MINUTE));
    });

    it('an uncaught activity failure fails the orchestration with the activity message', async () => {
        const id = await runtime.startNew('fixtureUncaught', { instanceId: 'fails-1' });
        await runtime.runUntilIdle();
        const status = await runtime.getStatus(id);
        expect(status?.runtimeStatus).toBe('Failed');
        expect(status?.failure?.message).toMatch(
            /^Activity function 'fixtureFlaky' failed: attempt 1 of fails-1 failed/,
        );
        expect(status?.output).toMatch(/^Orchestrator function 'fixtureUncaught' failed: Activity function/);
        expect(status?.customStatus).toBe('about to fail');
        const history = await runtime.getHistory(id);
        expect(history.find((e) => e.EventType === HistoryEventType.TaskFailed)).toMatchObject({
            TaskScheduledId: 0,
            Reason: "Activity function 'fixtureFlaky' failed: attempt 1 of fails-1 failed",
        });
        expect(history.find((e) => e.EventType === HistoryEventType.ExecutionCompleted)).toMatchObject({
            OrchestrationStatus: 'Failed',
        });
    });

    it('reports an orchestration that would wait forever instead of hanging the test', async () => {
        // The first attempt fails inside the 1 ms retry timeout, so a retry timer (id 1) is scheduled. The
        // second fails after it: the framework gives up without a retry timer, while the JavaScript engine
        // waits for one (id 3) — on the real host this instance hangs too.
        const id = await runtime.startNew('fixtureRetryTimeout', { instanceId: 'stuck-1' });
        await runtime.runUntilIdle();
        const error = await runtime.advance(MINUTE).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LocalPlatformError);
        expect(error).toMatchObject({ code: 'INTERNAL' });
        expect((error as Error).message).toMatch(
            /'fixtureRetryTimeout' \(stuck-1\) waits for task id\(s\) 3 that were never scheduled/,
        );
        const ids = (await runtime.getHistory(id))
            .filter((e) => e.EventId >= 0)
            .map((e) => `${eventTypeName(e.EventType)}#${e.EventId}`);
        expect(ids).toEqual(['TaskScheduled#0', 'TimerCreated#1', 'TaskScheduled#2']);
        // Reported once, not on every later call.
        await expect(runtime.runUntilIdle()).resolves.toBeUndefined();
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Running');
    });
});

describe('DurableRuntime: sub-orchestrations and continueAsNew', () => {
    let clock: VirtualClock;
    let runtime: DurableRuntime;

    beforeEach(() => {
        clock = new VirtualClock(START);
        runtime = new DurableRuntime({ registry: functionRegistry(), clock });
    });
    afterEach(() => runtime.close());

    it('runs children under the ids the parent chose and returns their outputs in order', async () => {
        const id = await runtime.startNew('fixtureParent', { instanceId: 'parent-1', input: [1, 2, 3] });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.output).toEqual({ doubled: [2, 4, 6] });
        const child = await runtime.getStatus('parent-1:child:1');
        expect(child).toMatchObject({ name: 'fixtureChild', runtimeStatus: 'Completed', input: 2, output: 4 });
        const created = (await runtime.getHistory(id)).filter(
            (e) => e.EventType === HistoryEventType.SubOrchestrationInstanceCreated,
        );
        expect(created.map((e) => [e.EventId, e.InstanceId])).toEqual([
            [0, 'parent-1:child:0'],
            [1, 'parent-1:child:1'],
            [2, 'parent-1:child:2'],
        ]);
        expect(
            (await runtime.getHistory(id)).filter(
                (e) => e.EventType === HistoryEventType.SubOrchestrationInstanceCompleted,
            ),
        ).toHaveLength(3);
    });

    it('a failing child fails the parent task with the child error', async () => {
        const id = await runtime.startNew('fixtureParent', { instanceId: 'parent-2', input: [1, -5] });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus('parent-2:child:1'))?.runtimeStatus).toBe('Failed');
        const output = (await runtime.getStatus(id))?.output as { error: string };
        expect(output.error).toContain("Orchestrator function 'fixtureChild' failed: negative input -5");
        expect(
            (await runtime.getHistory(id)).some((e) => e.EventType === HistoryEventType.SubOrchestrationInstanceFailed),
        ).toBe(true);
    });

    it('continues as new 1,000 times with the history of only the current cycle', async () => {
        const id = await runtime.startNew('fixtureMonitor', {
            instanceId: 'monitor-1',
            input: { cycle: 0, until: 1000 },
        });
        let longest = 0;
        for (let i = 0; i < 1000; i++) {
            await runtime.advance(1000);
            longest = Math.max(longest, (await runtime.getStatus(id))!.historyLength);
        }
        const status = await runtime.getStatus(id);
        expect(status).toMatchObject({
            runtimeStatus: 'Completed',
            output: { cycles: 1000 },
            customStatus: { cycle: 999, doubled: 1998 },
        });
        expect(longest).toBeLessThanOrEqual(12);
        const kinds = (await runtime.getHistory(id)).map((e) => eventTypeName(e.EventType));
        expect(kinds[1]).toBe('ExecutionStarted');
        expect(kinds.filter((k) => k === 'ExecutionStarted')).toHaveLength(1);
        expect(clock.now().toISOString()).toBe(at(1000 * 1000));
    });
});
