import { describeOnEngines, isFinished, itOn, type EngineUnderTest } from '../../support/durableEngines';
import { gate } from '../fixtures/engineRules';
import '../fixtures/chain';
import '../fixtures/events';
import type { DeadlineRoundsInput } from '../fixtures/events';

/** Runs `fixtureEventLoop*` with its first activity held until `count` Signal events have been raised. */
async function burst(engine: EngineUnderTest, orchestration: string, instanceId: string, count: number) {
    // Gates live in this process: one per engine, or the second engine would find it open.
    const gateKey = `${instanceId}-${engine.name}`;
    await engine.startNew(orchestration, {
        instanceId,
        input: { gateKey, handled: [], generation: 0, idleMs: 3000 },
    });
    const running = engine.progress();
    await gate(gateKey).entered;
    for (let i = 0; i < count; i++) await engine.raiseEvent(instanceId, 'Signal', i);
    // Give the backend time to take the events in while the activity is still held.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    gate(gateKey).open();
    await running;
    return engine.waitFor(instanceId, isFinished);
}

const expectedRejection = /409|already exists/i;

describeOnEngines('engine rules', (engine, name) => {
    it('runs an activity chain and reports input, output and custom status', async () => {
        await engine().startNew('fixtureChain', { instanceId: 'chain', input: ['a', 'b', 'c'] });
        expect(await engine().waitFor('chain', isFinished)).toEqual({
            runtimeStatus: 'Completed',
            input: ['a', 'b', 'c'],
            output: ['a', 'b', 'c'],
            customStatus: { done: 3 },
        });
    });

    it('a burst of events while the orchestrator is busy: one generation that loops handles every event', async () => {
        const status = await burst(engine(), 'fixtureEventLoopInPlace', 'burst-in-place', 10);
        expect(status.output).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    });

    it('continueAsNew with pending events: the events taken in with the old generation are dropped', async () => {
        // Ten events reach the instance while its activity runs; the generation handles one and continues as
        // new; the nine others belong to the old execution and never reach the new one.
        const status = await burst(engine(), 'fixtureEventLoop', 'burst-continue', 10);
        expect(status).toMatchObject({ runtimeStatus: 'Completed', output: ['0'] });
    });

    it('a timer that lost the race is cancelled: the orchestration ends without waiting for it', async () => {
        await engine().startNew('fixtureApproval', { instanceId: 'approval', input: 3600_000 });
        await engine().waitFor('approval', (s) => s.runtimeStatus === 'Running');
        await engine().raiseEvent('approval', 'Approval', 'ops');
        // An hour-long timer: on the real engine the wait below is 60 s of wall time, far less than an hour.
        expect(await engine().waitFor('approval', isFinished, 60_000)).toMatchObject({
            runtimeStatus: 'Completed',
            output: { approved: true, by: 'ops' },
        });
    });

    it('retries: callActivityWithRetry runs the attempts with retry timers, then reports the last failure', async () => {
        const e = engine();
        await e.startNew('fixtureRetried', {
            instanceId: 'retry-ok',
            input: { key: `retry-ok-${e.name}`, failures: 2, maxAttempts: 3, intervalMs: 200 },
        });
        expect((await e.waitFor('retry-ok', isFinished)).output).toEqual({ ok: true, attempt: 3 });
        await e.startNew('fixtureRetried', {
            instanceId: 'retry-out',
            input: { key: `retry-out-${e.name}`, failures: 5, maxAttempts: 2, intervalMs: 200 },
        });
        const out = await e.waitFor('retry-out', isFinished);
        expect(out.runtimeStatus).toBe('Completed');
        expect(out.output).toMatchObject({
            ok: false,
            message: expect.stringMatching(
                /^Activity function 'fixtureFlaky' failed: +attempt 2 of retry-out-\w+ failed on purpose/,
            ),
        });
    });

    it('terminate: the instance ends Terminated with the reason as output; later events are accepted and ignored', async () => {
        const e = engine();
        await e.startNew('fixtureCollect', { instanceId: 'collect', input: 2 });
        await e.raiseEvent('collect', 'Item', 'one');
        await e.waitFor('collect', (s) => JSON.stringify(s.customStatus) === '{"received":1}');
        await e.terminate('collect', 'stop now');
        expect(await e.waitFor('collect', isFinished)).toMatchObject({
            runtimeStatus: 'Terminated',
            output: 'stop now',
            customStatus: { received: 1 },
        });
        await expect(e.raiseEvent('collect', 'Item', 'two')).resolves.toBeUndefined();
        await expect(e.raiseEvent('no-such-instance', 'Item', 'two')).rejects.toThrow(
            /no.*instance.*no-such-instance|not found/i,
        );
    });

    it('purge: only a finished instance is purged, and then it is gone', async () => {
        const e = engine();
        await e.startNew('fixtureCollect', { instanceId: 'purge-me', input: 1 });
        await e.waitFor('purge-me', (s) => s.runtimeStatus === 'Running');
        await expect(e.purge('purge-me')).rejects.toThrow(/412|terminal state|terminate it before purging/i);
        await e.raiseEvent('purge-me', 'Item', 'x');
        await e.waitFor('purge-me', isFinished);
        await e.purge('purge-me');
        expect(await e.status('purge-me')).toBeUndefined();
    });

    it('starting an id that is still running is refused', async () => {
        const e = engine();
        await e.startNew('fixtureCollect', { instanceId: 'twice', input: 1 });
        await e.waitFor('twice', (s) => s.runtimeStatus === 'Running');
        await expect(e.startNew('fixtureCollect', { instanceId: 'twice', input: 1 })).rejects.toThrow(
            expectedRejection,
        );
    });

    it('a custom status over 16 KB of UTF-16 fails the orchestration, measured in whole kilobytes', async () => {
        // The extension counts the JSON text as UTF-16 and truncates to whole kilobytes: a string of 8,701
        // characters is 8,703 code units of JSON (17,406 bytes, "16 KB") and passes; one more is 17,408 bytes,
        // "17 KB", and fails the orchestration.
        await engine().startNew('fixtureLargeStatus', { instanceId: 'status-fits', input: 8701 });
        expect((await engine().waitFor('status-fits', isFinished)).runtimeStatus).toBe('Completed');
        await engine().startNew('fixtureLargeStatus', { instanceId: 'status-over', input: 8702 });
        expect(await engine().waitFor('status-over', isFinished)).toMatchObject({
            runtimeStatus: 'Failed',
            output: expect.stringMatching(/UTF-16 size of the JSON-serialized payload must not exceed 16 KB/),
        });
    });

    /** Starts `fixtureDeadlineRounds` and sends `signals` Signals, each once the previous one was handled. */
    async function signalRounds(e: EngineUnderTest, instanceId: string, input: DeadlineRoundsInput, signals: number) {
        await e.startNew('fixtureDeadlineRounds', { instanceId, input });
        await e.waitFor(instanceId, (s) => s.runtimeStatus === 'Running');
        for (let i = 0; i < signals; i++) {
            await e.raiseEvent(instanceId, 'Signal', i);
            const received = `{"received":${i + 1}}`;
            await e.waitFor(instanceId, (s) => isFinished(s) || JSON.stringify(s.customStatus) === received);
        }
    }

    /** `signalRounds`, then the instance's final status, its history's event types and TimerCreated count. */
    async function deadlineRounds(e: EngineUnderTest, instanceId: string, input: DeadlineRoundsInput, signals: number) {
        await signalRounds(e, instanceId, input, signals);
        const status = await e.waitFor(instanceId, isFinished);
        const types = await e.historyEventTypes(instanceId);
        return { status, timersCreated: types.filter((t) => t === 'TimerCreated').length, types };
    }

    it('one deadline over event rounds: a timer yielded again, or a new one per round, is a TimerCreated per round', async () => {
        // durable-functions sends a compound task's action with all its children's: the kept timer is scheduled
        // again in each Task.any; a cancelled timer stays scheduled on the backend.
        for (const timer of ['reuse', 'perRound'] as const) {
            const run = await deadlineRounds(
                engine(),
                `rounds-${timer}`,
                { rounds: 3, timer, deadlineMs: 3600_000 },
                3,
            );
            expect(run.status.output).toEqual({ timedOut: false, received: [0, 1, 2] });
            expect({ timer, timersCreated: run.timersCreated }).toEqual({ timer, timersCreated: 3 });
        }
    });

    it('one deadline over event rounds: a CreateTimer sent with the first Task.any only is one TimerCreated', async () => {
        const run = await deadlineRounds(
            engine(),
            'rounds-once',
            { rounds: 3, timer: 'sentOnce', deadlineMs: 3600_000 },
            3,
        );
        expect(run.status.output).toEqual({ timedOut: false, received: [0, 1, 2] });
        expect(run.timersCreated).toBe(1);
    });

    // The extension's shim replays a JavaScript orchestrator's actions by awaiting each yielded action in turn
    // (OutOfProcOrchestrationShim, ProcessAsyncActionsV2): a Task.any whose action lacks the timer is a .NET
    // WhenAny of the event waits only, which the timer firing cannot end, so nothing after it is ever scheduled.
    itOn('dtfx', name, "a timer left out of a later Task.any's action fires but never ends it", async () => {
        const e = engine();
        const instanceId = 'rounds-once-missed';
        const input: DeadlineRoundsInput = { rounds: 5, timer: 'sentOnce', deadlineMs: 15_000 };
        const startedAt = Date.now();
        await signalRounds(e, instanceId, input, 2);
        // The rounds are met before the deadline (or the scenario says nothing): the instance is in round 3.
        expect(Date.now() - startedAt).toBeLessThan(input.deadlineMs);
        const deadline = Date.now() + 120_000;
        while (!(await e.historyEventTypes(instanceId)).includes('TimerFired') && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 500));
        }
        await new Promise((resolve) => setTimeout(resolve, 5000));
        expect(await e.historyEventTypes(instanceId)).toContain('TimerFired');
        expect(await e.status(instanceId)).toMatchObject({ runtimeStatus: 'Running', customStatus: { received: 2 } });
    });

    itOn('embedded', name, "a timer left out of a later Task.any's action ends it when it fires", async () => {
        const input: DeadlineRoundsInput = { rounds: 5, timer: 'sentOnce', deadlineMs: 15_000 };
        const run = await deadlineRounds(engine(), 'rounds-once-missed', input, 2);
        expect(run.status.output).toEqual({ timedOut: true, received: [0, 1] });
        expect(run.timersCreated).toBe(1);
    });

    itOn('embedded', name, 'events in the same batch as continueAsNew: the unread ones are dropped', async () => {
        await engine().startNew('fixtureEventLoop', {
            instanceId: 'same-batch',
            input: { handled: [], generation: 0, idleMs: 3000 },
        });
        for (let i = 0; i < 3; i++) await engine().raiseEvent('same-batch', 'Signal', i);
        // Batch delivery: ExecutionStarted and the three events in one episode; "0" is handled, "1" and "2" are
        // unread when the generation continues as new, and are lost.
        expect((await engine().waitFor('same-batch', isFinished)).output).toEqual(['0']);
    });

    // Last in the file: the instance loops in the host until the engine stops.
    itOn('dtfx', name, 'events in the same batch as continueAsNew come back in every new generation', async () => {
        const dtfx = engine().dtfx!;
        await engine().startNew('fixtureEventLoop', {
            instanceId: 'same-batch',
            input: { handled: [], generation: 0, idleMs: 3000 },
        });
        for (let i = 0; i < 3; i++) await engine().raiseEvent('same-batch', 'Signal', i);
        // The episode that takes the three events handles "0" and continues as new. Each new execution is handed
        // the same three events again (as already played), handles "0" again and continues as new: the work item
        // never ends, so the stored status never leaves the first generation. It reads Pending when the events
        // came in one batch with ExecutionStarted (nothing was ever checkpointed), Running when the first episode
        // ran alone and was checkpointed before they came; which one depends on timing (CI at load saw Pending).
        const deadline = Date.now() + 30_000;
        while (dtfx.episodesOf('same-batch') < 50 && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 200));
        }
        expect(dtfx.episodesOf('same-batch')).toBeGreaterThanOrEqual(50);
        const status = await engine().status('same-batch');
        expect(['Pending', 'Running']).toContain(status?.runtimeStatus);
        expect(status).toMatchObject({ input: { handled: [], generation: 0 } });
    });
});
