import { functionRegistry } from '../../tools/host/registry';
import { VirtualClock } from '../../tools/durable/clock';
import { DurableRuntime } from '../../tools/durable/runtime';
import { eventTypeName, HistoryEventType, type HistoryEventRecord } from '../../tools/durable/history';
import './fixtures/chain';

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
