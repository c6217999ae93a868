import { eventTypeName } from '../src/durable/history';
import { CONTROL_QUEUE_BATCH_SIZE, takeBatch } from '../src/durable/historyRules';
import { ActionType } from '../src/durable/replayEngine';
import {
    activity,
    at,
    completion,
    decision,
    failure,
    fired,
    raised,
    runEpisode,
    started,
    timer,
    waitFor,
} from './historyFixtures';

// One message in, history events and effects out: activities, timers, external events and batching.

describe('activities', () => {
    it('schedules an activity under sequence id 0 with its history event, pending task and effect', () => {
        const state = started();
        const r = runEpisode(
            state,
            at(1),
            decision({ actions: [activity('Hello', { city: 'Paris' })], awaitedTaskIds: [0] }),
        );
        expect(r.events).toEqual(['OrchestratorStarted', 'ExecutionStarted', 'TaskScheduled', 'OrchestratorCompleted']);
        expect(r.appended[1]).toMatchObject({ Name: 'Orch', Input: '{"n":1}', IsPlayed: true, EventId: -1 });
        expect(r.appended[2]).toMatchObject({ EventId: 0, Name: 'Hello', Input: '{"city":"Paris"}' });
        expect(r.effects).toEqual([
            {
                kind: 'activity',
                work: {
                    instanceId: 'inst',
                    executionId: state.executionId,
                    taskScheduledId: 0,
                    name: 'Hello',
                    input: '{"city":"Paris"}',
                },
            },
        ]);
        expect(state.runtimeStatus).toBe('Running');
        expect(state.pending).toEqual({ 0: { kind: 'activity', name: 'Hello', input: '{"city":"Paris"}' } });
        expect(state.actionIds).toEqual([0]);
        expect(state.nextEventId).toBe(1);
        expect(r.hang).toBeUndefined();
    });

    it('records a completion and completes the execution with the output', () => {
        const state = started();
        const actions = [activity('Hello')];
        runEpisode(state, at(1), decision({ actions, awaitedTaskIds: [0] }));
        state.inbox.push(completion(state, 0, 'Hello Paris'));
        const r = runEpisode(state, at(2), decision({ actions, isDone: true, output: 'Hello Paris' }));
        expect(r.events).toEqual([
            'OrchestratorStarted',
            'TaskCompleted',
            'ExecutionCompleted',
            'OrchestratorCompleted',
        ]);
        expect(r.appended[1]).toMatchObject({ TaskScheduledId: 0, Result: '"Hello Paris"', IsPlayed: true });
        expect(r.appended[2]).toMatchObject({ OrchestrationStatus: 'Completed', Result: '"Hello Paris"' });
        expect(state).toMatchObject({ runtimeStatus: 'Completed', output: '"Hello Paris"', pending: {}, inbox: [] });
        // Replayed actions keep their ids: nothing is scheduled twice.
        expect(r.effects).toEqual([]);
        expect(state.actionIds).toEqual([0]);
    });

    it('records a failure; the orchestrator that throws on it fails the execution', () => {
        const state = started();
        const actions = [activity('Hello')];
        runEpisode(state, at(1), decision({ actions, awaitedTaskIds: [0] }));
        state.inbox.push(failure(state, 0, 'no such city'));
        const r = runEpisode(state, at(2), decision({ actions, error: 'no such city' }));
        expect(r.events).toEqual(['OrchestratorStarted', 'TaskFailed', 'ExecutionCompleted', 'OrchestratorCompleted']);
        expect(r.appended[1]).toMatchObject({ TaskScheduledId: 0, Reason: 'no such city', Details: 'stack' });
        expect(r.appended[2]).toMatchObject({ OrchestrationStatus: 'Failed' });
        expect(state.runtimeStatus).toBe('Failed');
        expect(state.failure).toEqual({ message: 'no such city' });
        expect(JSON.parse(state.output!)).toBe("Orchestrator function 'Orch' failed: no such city");
    });

    it('drops a completion of an older execution or of a task no longer pending, and says so', () => {
        const state = started();
        runEpisode(state, at(1), decision({ actions: [activity('Hello')], awaitedTaskIds: [0] }));
        state.inbox.push(completion(state, 0, 1, 'older'), completion(state, 5, 1));
        expect(takeBatch(state, 'batch', () => undefined)).toEqual([]);
        expect(state.inbox).toEqual([]);
        state.inbox.push(completion(state, 7, 1));
        const logs: string[] = [];
        takeBatch(state, 'batch', (line) => logs.push(line));
        expect(logs).toEqual(['TaskCompleted for inst dropped (stale)']);
    });

    it('fails the execution on an action the runtime does not support', () => {
        const state = started();
        const r = runEpisode(state, at(1), decision({ actions: [{ actionType: ActionType.CallHttp }] }));
        expect(state.runtimeStatus).toBe('Failed');
        expect(state.failure!.message).toMatch(/does not support action type 8/);
        expect(r.events).toContain('ExecutionCompleted');
    });

    it('reports a hang when the engine waits for an id nobody scheduled, and clears it once resolved', () => {
        const state = started();
        const r = runEpisode(state, at(1), decision({ awaitedTaskIds: [3] }));
        expect(r.hang).toMatch(/waits for task id\(s\) 3 that were never scheduled \(pending: none\)/);
        expect(state.stuck).toBe(r.hang);
        state.inbox.push(raised('go', 1));
        expect(runEpisode(state, at(2), decision()).hang).toBeUndefined();
        expect(state.stuck).toBeUndefined();
    });
});

describe('timers', () => {
    it('creates a timer under the next id with a timer effect, and records it firing', () => {
        const state = started();
        const actions = [activity('Hello'), timer(at(60))];
        runEpisode(state, at(1), decision({ actions, awaitedTaskIds: [0, 1] }));
        expect(state.pending[1]).toEqual({ kind: 'timer', fireAt: at(60).toISOString(), fired: false });
        expect(state.history.map((e) => eventTypeName(e.EventType))).toContain('TimerCreated');
        expect(state.history.find((e) => e.EventId === 1)).toMatchObject({ FireAt: at(60).toISOString() });

        state.inbox.push(fired(state, 1));
        const r = runEpisode(state, at(60), decision({ actions, awaitedTaskIds: [0] }));
        expect(r.events).toEqual(['OrchestratorStarted', 'TimerFired', 'OrchestratorCompleted']);
        expect(r.appended[1]).toMatchObject({ TimerId: 1, FireAt: at(60).toISOString() });
        expect(state.pending[1]).toBeUndefined();
    });

    it('emits the timer effect with the fire time for the runtime to schedule', () => {
        const state = started();
        const r = runEpisode(state, at(1), decision({ actions: [timer(at(90))], awaitedTaskIds: [0] }));
        expect(r.effects).toEqual([
            {
                kind: 'timer',
                instanceId: 'inst',
                executionId: state.executionId,
                timerId: 0,
                fireAtMs: at(90).getTime(),
            },
        ]);
    });

    it('forgets a timer the orchestrator cancelled: its firing is stale', () => {
        const state = started();
        runEpisode(state, at(1), decision({ actions: [timer(at(60)), waitFor('go')], awaitedTaskIds: [0] }));
        state.inbox.push(raised('go', true));
        runEpisode(state, at(2), decision({ actions: [timer(at(60), true), waitFor('go')] }));
        expect(state.pending).toEqual({});
        state.inbox.push(fired(state, 0));
        expect(takeBatch(state, 'batch', () => undefined)).toEqual([]);
    });

    it('records a timer created already cancelled, with no effect and nothing pending', () => {
        const state = started();
        const r = runEpisode(state, at(1), decision({ actions: [timer(at(60), true)] }));
        expect(r.events).toContain('TimerCreated');
        expect(r.effects).toEqual([]);
        expect(state.pending).toEqual({});
        expect(state.actionIds).toEqual([0]);
    });
});

describe('external events', () => {
    it('records an event the orchestrator waits for; the wait itself takes no id', () => {
        const state = started();
        runEpisode(state, at(1), decision({ actions: [waitFor('Approval')] }));
        expect(state.actionIds).toEqual([null]);
        expect(state.nextEventId).toBe(0);
        state.inbox.push(raised('Approval', { ok: true }));
        const r = runEpisode(state, at(2), decision({ actions: [waitFor('Approval')], isDone: true, output: true }));
        expect(r.events).toEqual(['OrchestratorStarted', 'EventRaised', 'ExecutionCompleted', 'OrchestratorCompleted']);
        expect(r.appended[1]).toMatchObject({ Name: 'Approval', Input: '{"ok":true}', IsPlayed: true });
        expect(state.runtimeStatus).toBe('Completed');
    });

    it('records an event nobody waits for in the history too, where a later wait finds it', () => {
        const state = started();
        runEpisode(state, at(1), decision({ actions: [activity('Slow')], awaitedTaskIds: [0] }));
        state.inbox.push(raised('Early', 42));
        const r = runEpisode(state, at(2), decision({ actions: [activity('Slow')], awaitedTaskIds: [0] }));
        expect(r.events).toEqual(['OrchestratorStarted', 'EventRaised', 'OrchestratorCompleted']);
        expect(r.effects).toEqual([]);
        expect(state.history.filter((e) => eventTypeName(e.EventType) === 'EventRaised')).toHaveLength(1);
        expect(state.runtimeStatus).toBe('Running');
    });
});

describe('several messages in one episode', () => {
    it('takes every queued message in batch mode, in order, each with its event', () => {
        const state = started();
        const actions = [activity('A'), activity('B')];
        runEpisode(state, at(1), decision({ actions, awaitedTaskIds: [0, 1] }));
        state.inbox.push(completion(state, 1, 'b'), raised('e', 1), completion(state, 0, 'a'));
        const r = runEpisode(state, at(2), decision({ actions, isDone: true, output: ['a', 'b'] }));
        expect(r.batch.map((m) => m.kind)).toEqual(['TaskCompleted', 'EventRaised', 'TaskCompleted']);
        expect(r.events).toEqual([
            'OrchestratorStarted',
            'TaskCompleted',
            'EventRaised',
            'TaskCompleted',
            'ExecutionCompleted',
            'OrchestratorCompleted',
        ]);
        expect(r.appended.map((e) => e.TaskScheduledId)).toEqual([undefined, 1, undefined, 0, undefined, undefined]);
        expect(r.appended.every((e) => e.Timestamp === at(2).toISOString())).toBe(true);
    });

    it('takes one message per episode in single mode', () => {
        const state = started();
        state.inbox.push(raised('a', 1), raised('b', 2));
        expect(runEpisode(state, at(1), decision(), 'single').batch).toEqual([{ kind: 'ExecutionStarted' }]);
        expect(runEpisode(state, at(2), decision(), 'single').events).toEqual([
            'OrchestratorStarted',
            'EventRaised',
            'OrchestratorCompleted',
        ]);
        expect(state.inbox).toHaveLength(1);
    });

    it('takes at most the control queue batch size', () => {
        const state = started();
        runEpisode(state, at(1), decision());
        for (let i = 0; i < CONTROL_QUEUE_BATCH_SIZE + 8; i++) state.inbox.push(raised('tick', i));
        expect(runEpisode(state, at(2), decision()).batch).toHaveLength(CONTROL_QUEUE_BATCH_SIZE);
        expect(state.inbox).toHaveLength(8);
    });

    it('keeps a Terminate to an episode of its own', () => {
        const state = started();
        runEpisode(state, at(1), decision());
        state.inbox.push(raised('a', 1), { kind: 'Terminate', reason: 'stop' }, raised('b', 2));
        const log = () => undefined;
        expect(takeBatch(state, 'batch', log).map((m) => m.kind)).toEqual(['EventRaised']);
        expect(takeBatch(state, 'batch', log)).toEqual([{ kind: 'Terminate', reason: 'stop' }]);
        expect(takeBatch(state, 'batch', log).map((m) => m.kind)).toEqual(['EventRaised']);
    });
});
