import { eventTypeName } from '../src/durable/history';
import { retryDelayMs, takeBatch, terminate } from '../src/durable/historyRules';
import { ActionType, type OrchestratorAction, type RetryOptionsLike } from '../src/durable/replayEngine';
import { CUSTOM_STATUS_LIMIT_UTF16_BYTES } from '../src/durable/customStatusLimit';
import { newInstance } from '../src/durable/store';
import { activity, at, decision, failure, fired, raised, runEpisode, started, T0, waitFor } from './historyFixtures';

// One message in, history events and effects out: continueAsNew, terminate, sub-orchestrations, retries and the
// custom status limit.

describe('continueAsNew', () => {
    const again = (input: unknown): OrchestratorAction => ({ actionType: ActionType.ContinueAsNew, input });

    it('starts a new execution with the new input; events of the batch are gone, those queued behind it stay', () => {
        const state = started('Monitor', { round: 1 });
        runEpisode(state, at(1), decision({ actions: [waitFor('tick')] }));
        const firstExecution = state.executionId;
        state.inbox.push(raised('tick', 1), raised('tick', 2));
        const r = runEpisode(
            state,
            at(2),
            decision({ actions: [waitFor('tick'), again({ round: 2 })], isDone: true }),
            'single',
            () => {
                // Arrived while the orchestrator ran: behind the batch.
                state.inbox.push(raised('late', 3), failure(state, 0, 'boom', firstExecution));
            },
        );
        expect(r.batch).toEqual([raised('tick', 1)]);
        expect(r.runAgain).toBe(true);
        expect(state.runtimeStatus).toBe('ContinuedAsNew');
        expect(state.executionId).not.toBe(firstExecution);
        expect(state).toMatchObject({ input: '{"round":2}', history: [], actionIds: [], pending: {}, nextEventId: 0 });
        expect(state.executionCount).toBe(2);
        expect(state.inbox).toEqual([{ kind: 'ExecutionStarted' }, raised('tick', 2), raised('late', 3)]);

        const next = runEpisode(state, at(3), decision({ actions: [waitFor('tick')] }));
        expect(next.batch.map((m) => m.kind)).toEqual(['ExecutionStarted', 'EventRaised', 'EventRaised']);
        expect(next.appended[1]).toMatchObject({ Name: 'Monitor', Input: '{"round":2}' });
        expect(state.runtimeStatus).toBe('Running');
    });

    it('drops completions of the old execution', () => {
        const state = started();
        runEpisode(state, at(1), decision({ actions: [activity('A')], awaitedTaskIds: [0] }));
        const old = { kind: 'TaskCompleted' as const, executionId: state.executionId, taskScheduledId: 0, result: '1' };
        state.inbox.push(raised('e', 1));
        runEpisode(state, at(2), decision({ actions: [activity('A'), again(7)], isDone: true }));
        runEpisode(state, at(3), decision({ actions: [activity('A')], awaitedTaskIds: [0] }));
        state.inbox.push(old);
        expect(takeBatch(state, 'batch', () => undefined)).toEqual([]);
    });
});

describe('terminate', () => {
    it('ends the execution without running the orchestrator and tells the parent', () => {
        const state = newInstance(T0, 'child', 'Child', '1');
        state.parent = { instanceId: 'parent', executionId: 'p1', taskScheduledId: 4 };
        runEpisode(state, at(1), decision({ actions: [activity('A')], awaitedTaskIds: [0] }));
        const before = state.history.length;
        const effects = terminate(state, 'operator asked', at(2));
        expect(state.history.slice(before).map((e) => eventTypeName(e.EventType))).toEqual([
            'ExecutionTerminated',
            'ExecutionCompleted',
        ]);
        expect(state.history[before]).toMatchObject({ Input: '"operator asked"' });
        expect(state).toMatchObject({
            runtimeStatus: 'Terminated',
            output: '"operator asked"',
            pending: {},
            inbox: [],
            lastUpdatedTime: at(2).toISOString(),
        });
        expect(effects).toEqual([
            {
                kind: 'message',
                instanceId: 'parent',
                message: {
                    kind: 'SubOrchestrationFailed',
                    executionId: 'p1',
                    taskScheduledId: 4,
                    reason: "Orchestration 'Child' (child) was terminated: operator asked",
                    details: '',
                },
            },
        ]);
    });
});

describe('sub-orchestrations', () => {
    const child = (name: string, instanceId?: string): OrchestratorAction => ({
        actionType: ActionType.CallSubOrchestrator,
        functionName: name,
        input: { vm: 1 },
        ...(instanceId !== undefined ? { instanceId } : {}),
    });

    it('starts a child under the next id, named after the parent and the id unless one was given', () => {
        const state = started();
        const r = runEpisode(
            state,
            at(1),
            decision({ actions: [child('Step'), child('Step', 'step-b')], awaitedTaskIds: [0, 1] }),
        );
        expect(r.events).toEqual([
            'OrchestratorStarted',
            'ExecutionStarted',
            'SubOrchestrationInstanceCreated',
            'SubOrchestrationInstanceCreated',
            'OrchestratorCompleted',
        ]);
        expect(r.appended[2]).toMatchObject({ EventId: 0, Name: 'Step', InstanceId: 'inst:0', Input: '{"vm":1}' });
        expect(r.appended[3]).toMatchObject({ EventId: 1, InstanceId: 'step-b' });
        const parent = { instanceId: 'inst', executionId: state.executionId };
        expect(r.effects).toEqual([
            {
                kind: 'startChild',
                child: {
                    parent: { ...parent, taskScheduledId: 0 },
                    name: 'Step',
                    instanceId: 'inst:0',
                    input: '{"vm":1}',
                },
            },
            {
                kind: 'startChild',
                child: {
                    parent: { ...parent, taskScheduledId: 1 },
                    name: 'Step',
                    instanceId: 'step-b',
                    input: '{"vm":1}',
                },
            },
        ]);
    });

    it("reports the child's completion to the parent, which records it", () => {
        const parent = started();
        runEpisode(parent, at(1), decision({ actions: [child('Step')], awaitedTaskIds: [0] }));
        const kid = newInstance(at(1), 'inst:0', 'Step', '{"vm":1}');
        kid.parent = { instanceId: 'inst', executionId: parent.executionId, taskScheduledId: 0 };
        const done = runEpisode(kid, at(2), decision({ isDone: true, output: { ok: 1 } }));
        expect(done.effects).toEqual([
            {
                kind: 'message',
                instanceId: 'inst',
                message: {
                    kind: 'SubOrchestrationCompleted',
                    executionId: parent.executionId,
                    taskScheduledId: 0,
                    result: '{"ok":1}',
                },
            },
        ]);
        parent.inbox.push(done.effects[0]!.kind === 'message' ? done.effects[0]!.message : raised('x', 0));
        const r = runEpisode(parent, at(3), decision({ actions: [child('Step')], isDone: true, output: 1 }));
        expect(r.events.slice(0, 2)).toEqual(['OrchestratorStarted', 'SubOrchestrationInstanceCompleted']);
        expect(r.appended[1]).toMatchObject({ TaskScheduledId: 0, Result: '{"ok":1}' });
    });

    it("reports a child's failure with the orchestrator's message, and a child without output as null", () => {
        const failed = newInstance(T0, 'c1', 'Step', undefined);
        failed.parent = { instanceId: 'p', executionId: 'e', taskScheduledId: 2 };
        const r1 = runEpisode(failed, at(1), decision({ error: 'disk gone' }));
        expect(r1.effects[0]).toMatchObject({
            message: {
                kind: 'SubOrchestrationFailed',
                taskScheduledId: 2,
                reason: "Orchestrator function 'Step' failed: disk gone",
            },
        });
        const empty = newInstance(T0, 'c2', 'Step', undefined);
        empty.parent = { instanceId: 'p', executionId: 'e', taskScheduledId: 3 };
        expect(runEpisode(empty, at(1), decision({ isDone: true })).effects[0]).toMatchObject({
            message: { kind: 'SubOrchestrationCompleted', result: 'null' },
        });
    });
});

describe('retries', () => {
    const options: RetryOptionsLike = {
        firstRetryIntervalInMilliseconds: 1000,
        maxNumberOfAttempts: 2,
        backoffCoefficient: 2,
    };
    const withRetry: OrchestratorAction = {
        ...activity('Flaky', 'x'),
        actionType: ActionType.CallActivityWithRetry,
        retryOptions: options,
    };

    it('waits on a retry timer after a failed attempt, schedules the next attempt when it fires, and gives up after the last', () => {
        const state = started();
        const actions = [withRetry];
        runEpisode(state, at(0), decision({ actions, awaitedTaskIds: [0] }));
        expect(state.pending[0]).toMatchObject({ retry: { attempt: 1, firstAttemptAt: at(0).toISOString() } });

        // A failed attempt is an episode of its own, even with other messages queued.
        state.inbox.push(failure(state, 0), raised('other', 1));
        const r1 = runEpisode(state, at(10), decision({ actions, awaitedTaskIds: [1] }));
        expect(r1.batch.map((m) => m.kind)).toEqual(['TaskFailed']);
        expect(r1.events).toEqual(['OrchestratorStarted', 'TaskFailed', 'TimerCreated', 'OrchestratorCompleted']);
        expect(r1.appended[2]).toMatchObject({ EventId: 1, FireAt: at(11).toISOString() });
        expect(r1.effects).toEqual([
            expect.objectContaining({ kind: 'timer', timerId: 1, fireAtMs: at(11).getTime() }),
        ]);

        const r2 = runEpisode(state, at(11), decision({ actions, awaitedTaskIds: [2] }));
        expect(r2.batch.map((m) => m.kind)).toEqual(['EventRaised']);
        state.inbox.push(fired(state, 1));
        const r3 = runEpisode(state, at(11), decision({ actions, awaitedTaskIds: [2] }));
        expect(r3.events).toEqual(['OrchestratorStarted', 'TimerFired', 'TaskScheduled', 'OrchestratorCompleted']);
        expect(r3.appended[2]).toMatchObject({ EventId: 2, Name: 'Flaky', Input: 'x' });
        expect(r3.effects).toEqual([
            expect.objectContaining({ kind: 'activity', work: expect.objectContaining({ taskScheduledId: 2 }) }),
        ]);
        expect(state.pending[2]).toMatchObject({ retry: { attempt: 2 } });

        // The last attempt fails: the framework still waits on a timer (2 s: backoff 2), then schedules nothing.
        state.inbox.push(failure(state, 2));
        const r4 = runEpisode(state, at(20), decision({ actions, awaitedTaskIds: [3] }));
        expect(r4.appended[2]).toMatchObject({ EventId: 3, FireAt: at(22).toISOString() });
        state.inbox.push(fired(state, 3));
        const r5 = runEpisode(state, at(22), decision({ actions, error: 'Flaky failed' }));
        expect(r5.events).toEqual(['OrchestratorStarted', 'TimerFired', 'ExecutionCompleted', 'OrchestratorCompleted']);
        expect(r5.effects).toEqual([]);
    });

    it('sets no retry timer once the retry timeout has passed', () => {
        const state = started();
        const timed = { ...withRetry, retryOptions: { ...options, retryTimeoutInMilliseconds: 5000 } };
        runEpisode(state, at(0), decision({ actions: [timed], awaitedTaskIds: [0] }));
        state.inbox.push(failure(state, 0));
        const r = runEpisode(state, at(6), decision({ actions: [timed] }));
        expect(r.events).toEqual(['OrchestratorStarted', 'TaskFailed', 'OrchestratorCompleted']);
        expect(r.logs).toEqual(['inst: retry timeout of Flaky expired; no retry timer']);
    });

    it('computes the delay with backoff, the cap and the timeout', () => {
        const first = T0;
        expect(retryDelayMs({ firstRetryIntervalInMilliseconds: 1000, maxNumberOfAttempts: 5 }, 3, first, at(1))).toBe(
            1000,
        );
        expect(retryDelayMs({ ...options, maxNumberOfAttempts: 5 }, 3, first, at(1))).toBe(4000);
        expect(retryDelayMs({ ...options, maxRetryIntervalInMilliseconds: 3000 }, 3, first, at(1))).toBe(3000);
        expect(retryDelayMs({ ...options, retryTimeoutInMilliseconds: 1000 }, 1, first, at(1))).toBeUndefined();
    });
});

describe('custom status', () => {
    it('records a custom status as JSON text', () => {
        const state = started();
        runEpisode(state, at(1), decision({ customStatus: { phase: 'copy', pct: 40 } }));
        expect(state.customStatus).toBe('{"phase":"copy","pct":40}');
    });

    it('fails the execution when its JSON text is over the limit, and keeps the last one that fitted', () => {
        const state = started();
        const fits = 'a'.repeat(Math.floor(CUSTOM_STATUS_LIMIT_UTF16_BYTES / 2) - 2); // with its quotes: the most that fits
        runEpisode(state, at(1), decision({ customStatus: fits }));
        expect(state.runtimeStatus).toBe('Running');
        runEpisode(state, at(2), decision({ customStatus: `${fits}b` }));
        expect(state.runtimeStatus).toBe('Failed');
        expect(state.failure!.message).toMatch(/must not exceed 16 KB\. The current payload size is 17 KB/);
        expect(state.customStatus).toBe(JSON.stringify(fits));
    });

    it('fails the execution when its output is not JSON', () => {
        const state = started();
        runEpisode(state, at(1), decision({ isDone: true, output: { n: BigInt(1) } }));
        expect(state.runtimeStatus).toBe('Failed');
        expect(state.failure!.message).toMatch(/its output is not JSON/);
    });
});
