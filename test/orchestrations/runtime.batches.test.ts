import {
    functionRegistry,
    VirtualClock,
    DurableRuntime,
    type DeliveryMode,
    HistoryEventType,
} from '../../packages/functions-local/src';
import './fixtures/batches';
import './fixtures/events';
import './fixtures/children';

const START = new Date('2025-03-01T10:00:00.000Z');

/**
 * Batch delivery, as the Azure Storage backend does it: every message queued for an instance reaches the
 * orchestrator in one episode (one OrchestratorStarted, several new events), and continueAsNew loses the events
 * of that batch (the out-of-process shim continues without preserving unprocessed events).
 */
describe('DurableRuntime: batch delivery', () => {
    let runtime: DurableRuntime;
    const make = (delivery?: DeliveryMode) =>
        (runtime = new DurableRuntime({
            registry: functionRegistry(),
            clock: new VirtualClock(START),
            ...(delivery ? { delivery } : {}),
        }));
    afterEach(() => runtime.close());

    it('delivers messages queued together in one episode', async () => {
        make();
        const id = await runtime.startNew('fixtureCollect', { instanceId: 'collect-batch', input: 3 });
        for (const item of ['a', 'b', 'c']) await runtime.raiseEvent(id, 'Item', item);
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.output).toEqual(['a', 'b', 'c']);
        const history = await runtime.getHistory(id);
        // One episode: ExecutionStarted and the three events after a single OrchestratorStarted.
        expect(history.filter((e) => e.EventType === HistoryEventType.OrchestratorStarted)).toHaveLength(1);
        expect(history.map((e) => e.EventType).slice(0, 5)).toEqual([
            HistoryEventType.OrchestratorStarted,
            HistoryEventType.ExecutionStarted,
            HistoryEventType.EventRaised,
            HistoryEventType.EventRaised,
            HistoryEventType.EventRaised,
        ]);
    });

    it('continueAsNew drops the events of its batch that the generation did not read', async () => {
        make();
        const id = await runtime.startNew('fixtureOneEventPerGeneration', { instanceId: 'naive', input: [] });
        await runtime.runUntilIdle();
        for (const item of ['1', '2', '3']) await runtime.raiseEvent(id, 'Item', item);
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.input).toEqual(['1']);
        // Later events still reach the new generation.
        await runtime.raiseEvent(id, 'Item', '4');
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.input).toEqual(['1', '4']);
    });

    it('with one message per episode the same loop sees every event (the old local behaviour)', async () => {
        make('single');
        const id = await runtime.startNew('fixtureOneEventPerGeneration', { instanceId: 'naive-single', input: [] });
        await runtime.runUntilIdle();
        for (const item of ['1', '2', '3']) await runtime.raiseEvent(id, 'Item', item);
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.input).toEqual(['1', '2', '3']);
    });

    it('a loop that drains its waiters within a generation loses nothing', async () => {
        make();
        const id = await runtime.startNew('fixtureDrainingLoop', {
            instanceId: 'draining',
            input: { seen: [], perGeneration: 4 },
        });
        await runtime.runUntilIdle();
        for (let i = 1; i <= 4; i++) await runtime.raiseEvent(id, 'Item', String(i));
        await runtime.runUntilIdle();
        const status = await runtime.getStatus(id);
        expect(status?.runtimeStatus).not.toBe('Failed');
        expect(status?.input).toEqual({ seen: ['1', '2', '3', '4'], perGeneration: 4 });
    });

    it('a timer yielded in a second Task.any is scheduled again and the orchestrator hangs; fresh timers do not', async () => {
        make();
        const reused = await runtime.startNew('fixtureReusedTimer', { instanceId: 'reused-timer' });
        const fresh = await runtime.startNew('fixtureFreshTimers', { instanceId: 'fresh-timers' });
        await runtime.runUntilIdle();
        for (const id of [reused, fresh]) {
            await runtime.raiseEvent(id, 'A', 1);
            await runtime.raiseEvent(id, 'B', 2);
        }
        await expect(runtime.runUntilIdle()).rejects.toThrow(/fixtureReusedTimer.*never scheduled/);
        const timers = (await runtime.getHistory(reused)).filter((e) => e.EventType === HistoryEventType.TimerCreated);
        expect(timers).toHaveLength(2);
        expect((await runtime.getStatus(reused))?.runtimeStatus).toBe('Running');
        expect(await runtime.getStatus(fresh)).toMatchObject({ runtimeStatus: 'Completed', output: 42 });
    });
});
