import {
    functionRegistry,
    VirtualClock,
    DurableRuntime,
    eventTypeName,
    HistoryEventType,
    type HistoryEventRecord,
} from '../../packages/functions-local/src';
import { measureConcurrency } from './fixtures/chain';

const START = new Date('2025-03-01T10:00:00.000Z');

function kinds(history: HistoryEventRecord[]): string[] {
    return history.map((e) => eventTypeName(e.EventType));
}

describe('DurableRuntime: activities and history', () => {
    let clock: VirtualClock;
    let runtime: DurableRuntime;

    beforeEach(() => {
        clock = new VirtualClock(START);
        runtime = new DurableRuntime({ registry: functionRegistry(), clock });
    });
    afterEach(() => runtime.close());

    it('runs an activity chain for real and records a faithful history', async () => {
        const id = await runtime.startNew('fixtureChain', { instanceId: 'chain-1', input: ['a', 'b', 'c'] });
        expect(id).toBe('chain-1');
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Pending');
        await runtime.runUntilIdle();
        const status = await runtime.getStatus(id);
        expect(status).toMatchObject({
            runtimeStatus: 'Completed',
            output: ['a', 'b', 'c'],
            input: ['a', 'b', 'c'],
            customStatus: { done: 3 },
        });
        const history = await runtime.getHistory(id);
        expect(kinds(history)).toEqual([
            'OrchestratorStarted',
            'ExecutionStarted',
            'TaskScheduled',
            'OrchestratorCompleted',
            'OrchestratorStarted',
            'TaskCompleted',
            'TaskScheduled',
            'OrchestratorCompleted',
            'OrchestratorStarted',
            'TaskCompleted',
            'TaskScheduled',
            'OrchestratorCompleted',
            'OrchestratorStarted',
            'TaskCompleted',
            'ExecutionCompleted',
            'OrchestratorCompleted',
        ]);
        const scheduled = history.filter((e) => e.EventType === HistoryEventType.TaskScheduled);
        expect(scheduled.map((e) => e.EventId)).toEqual([0, 1, 2]);
        expect(scheduled[1]).toMatchObject({
            Name: 'fixtureAppendStep',
            Input: JSON.stringify({ trail: ['a'], step: 'b' }),
        });
        const completed = history.filter((e) => e.EventType === HistoryEventType.TaskCompleted);
        expect(completed.map((e) => e.TaskScheduledId)).toEqual([0, 1, 2]);
        expect(history.every((e) => e.Timestamp === START.toISOString())).toBe(true);
    });
});

describe('DurableRuntime: fan-out and determinism', () => {
    let clock: VirtualClock;
    let runtime: DurableRuntime;

    beforeEach(() => {
        clock = new VirtualClock(START);
        runtime = new DurableRuntime({ registry: functionRegistry(), clock, maxConcurrentActivities: 3 });
    });
    afterEach(() => runtime.close());

    it('fans out one activity per item and fans the results back in', async () => {
        measureConcurrency.max = 0;
        const items = Array.from({ length: 25 }, (_, i) => 'x'.repeat(i + 1));
        const id = await runtime.startNew('fixtureFanOut', { input: items });
        await runtime.runUntilIdle();
        const status = await runtime.getStatus(id);
        expect(status?.runtimeStatus).toBe('Completed');
        expect(status?.output).toBe((25 * 26) / 2);
        // Activities ran concurrently, but never more than the configured bound.
        expect(measureConcurrency.max).toBe(3);
        const history = await runtime.getHistory(id);
        const scheduled = history.filter((e) => e.EventType === HistoryEventType.TaskScheduled);
        expect(scheduled.map((e) => e.EventId)).toEqual(Array.from({ length: 25 }, (_, i) => i));
        const completedIds = history
            .filter((e) => e.EventType === HistoryEventType.TaskCompleted)
            .map((e) => e.TaskScheduledId as number)
            .sort((a, b) => a - b);
        expect(completedIds).toEqual(scheduled.map((e) => e.EventId));
    });

    it('gives newGuid and currentUtcDateTime the same values on every replay, from the history', async () => {
        const id = await runtime.startNew('fixtureDeterminism', { instanceId: 'det-1' });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Running');
        await runtime.advance(60_000);
        const output = (await runtime.getStatus(id))?.output as Record<string, string>;
        expect(output.startedAt).toBe(START.toISOString());
        expect(output.wokeAt).toBe(new Date(START.getTime() + 60_000).toISOString());
        expect(output.first).not.toBe(output.second);

        // The same orchestrator under the same instance id and clock decides the same guids.
        await runtime.purge(id);
        clock = new VirtualClock(START);
        const again = new DurableRuntime({ registry: functionRegistry(), clock });
        try {
            await again.startNew('fixtureDeterminism', { instanceId: 'det-1' });
            await again.advance(60_000);
            expect((await again.getStatus('det-1'))?.output).toEqual(output);
        } finally {
            await again.close();
        }
    });
});
