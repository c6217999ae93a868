import {
    DurableRuntime,
    eventTypeName,
    functionRegistry,
    HistoryEventType,
    LocalPlatformError,
    VirtualClock,
} from '../../packages/functions-local/src';
import './fixtures/events';
import './fixtures/chain';

const START = new Date('2025-03-01T10:00:00.000Z');
const HOUR = 3600_000;

describe('DurableRuntime: external events, timers, status and lifecycle', () => {
    let clock: VirtualClock;
    let runtime: DurableRuntime;

    beforeEach(() => {
        clock = new VirtualClock(START);
        runtime = new DurableRuntime({ registry: functionRegistry(), clock });
    });
    afterEach(() => runtime.close());

    it('returns the event when it arrives before the timeout, and the losing timer never fires', async () => {
        const id = await runtime.startNew('fixtureApproval', { instanceId: 'approve-1', input: 24 * HOUR });
        await runtime.runUntilIdle();
        await runtime.advance(HOUR);
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Running');
        await runtime.raiseEvent(id, 'Approval', { user: 'ops' });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.output).toEqual({ approved: true, by: { user: 'ops' } });

        // The cancelled timer is gone: moving past its due time adds nothing to the history.
        const before = (await runtime.getHistory(id)).length;
        await runtime.advance(48 * HOUR);
        const history = await runtime.getHistory(id);
        expect(history).toHaveLength(before);
        expect(history.some((e) => e.EventType === HistoryEventType.TimerFired)).toBe(false);
        const created = history.find((e) => e.EventType === HistoryEventType.TimerCreated);
        expect(created).toMatchObject({ EventId: 0, FireAt: new Date(START.getTime() + 24 * HOUR).toISOString() });
        const raised = history.find((e) => e.EventType === HistoryEventType.EventRaised);
        expect(raised).toMatchObject({ Name: 'Approval', Input: JSON.stringify({ user: 'ops' }) });
        expect(raised?.Timestamp).toBe(new Date(START.getTime() + HOUR).toISOString());
    });

    it('times out exactly when the timer is due if no event comes', async () => {
        const id = await runtime.startNew('fixtureApproval', { input: 2 * HOUR });
        await runtime.advance(2 * HOUR - 1);
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Running');
        await runtime.advance(1);
        const status = await runtime.getStatus(id);
        expect(status?.output).toEqual({ approved: false });
        expect(status?.lastUpdatedTime.toISOString()).toBe(new Date(START.getTime() + 2 * HOUR).toISOString());
        const fired = (await runtime.getHistory(id)).find((e) => e.EventType === HistoryEventType.TimerFired);
        expect(fired).toMatchObject({ TimerId: 0 });
    });

    it('buffers events raised before the orchestrator waits for them, in order', async () => {
        const id = await runtime.startNew('fixtureCollect', { instanceId: 'collect-1', input: 3 });
        await runtime.raiseEvent(id, 'Item', 'first');
        await runtime.raiseEvent(id, 'Item', 'second');
        await runtime.runUntilIdle();
        expect(await runtime.getStatus(id)).toMatchObject({ runtimeStatus: 'Running', customStatus: { received: 2 } });
        await runtime.raiseEvent(id, 'Item', { n: 3 });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.output).toEqual(['first', 'second', { n: 3 }]);
    });

    it('raising to a missing instance is NOT_FOUND; to a finished one the event is dropped', async () => {
        await expect(runtime.raiseEvent('nobody', 'Item', 1)).rejects.toMatchObject({ code: 'NOT_FOUND' });
        const id = await runtime.startNew('fixtureCollect', { input: 0 });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.runtimeStatus).toBe('Completed');
        await runtime.raiseEvent(id, 'Item', 'late');
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.output).toEqual([]);
    });

    it('refuses a second start of a running instance id and replaces a finished one', async () => {
        await runtime.startNew('fixtureCollect', { instanceId: 'same', input: 1 });
        await runtime.runUntilIdle();
        const conflict = await runtime
            .startNew('fixtureCollect', { instanceId: 'same', input: 1 })
            .catch((e: unknown) => e);
        expect(conflict).toBeInstanceOf(LocalPlatformError);
        expect(conflict).toMatchObject({ code: 'CONFLICT' });
        expect((conflict as Error).message).toContain('Running');

        await runtime.raiseEvent('same', 'Item', 'x');
        await runtime.runUntilIdle();
        expect((await runtime.getStatus('same'))?.runtimeStatus).toBe('Completed');
        await runtime.startNew('fixtureCollect', { instanceId: 'same', input: 0 });
        await runtime.runUntilIdle();
        expect((await runtime.getStatus('same'))?.output).toEqual([]);
    });

    it('rejects unknown orchestrators and instance ids the backend cannot store', async () => {
        await expect(runtime.startNew('noSuchOrchestrator')).rejects.toMatchObject({ code: 'NOT_FOUND' });
        await expect(runtime.startNew('fixtureAppendStep')).rejects.toMatchObject({ code: 'NOT_FOUND' });
        await expect(runtime.startNew('fixtureCollect', { instanceId: 'a/b' })).rejects.toThrow(/"\/" at offset 1/);
        await expect(runtime.startNew('fixtureCollect', { instanceId: '' })).rejects.toMatchObject({
            code: 'VALIDATION_FAILED',
        });
    });

    it('terminates a waiting instance, drops later events, then purges it', async () => {
        const id = await runtime.startNew('fixtureApproval', { instanceId: 'term-1', input: HOUR });
        await runtime.runUntilIdle();
        await runtime.terminate(id, 'operator cancelled');
        await runtime.runUntilIdle();
        const status = await runtime.getStatus(id);
        expect(status).toMatchObject({ runtimeStatus: 'Terminated', output: 'operator cancelled' });
        const kinds = (await runtime.getHistory(id)).map((e) => eventTypeName(e.EventType));
        expect(kinds.slice(-2)).toEqual(['ExecutionTerminated', 'ExecutionCompleted']);

        // Its timer no longer fires; terminating again changes nothing.
        await runtime.advance(2 * HOUR);
        await runtime.terminate(id, 'again');
        await runtime.runUntilIdle();
        expect((await runtime.getStatus(id))?.output).toBe('operator cancelled');

        await runtime.purge(id);
        expect(await runtime.getStatus(id)).toBeUndefined();
        await expect(runtime.purge(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
        await expect(runtime.terminate(id, 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('refuses to purge a running instance', async () => {
        const id = await runtime.startNew('fixtureCollect', { input: 1 });
        await runtime.runUntilIdle();
        await expect(runtime.purge(id)).rejects.toMatchObject({ code: 'CONFLICT' });
    });

    it('lists instances by status and id prefix', async () => {
        await runtime.startNew('fixtureCollect', { instanceId: 'vm:1', input: 0 });
        await runtime.startNew('fixtureCollect', { instanceId: 'vm:2', input: 1 });
        await runtime.startNew('fixtureCollect', { instanceId: 'other', input: 1 });
        await runtime.runUntilIdle();
        const running = await runtime.listInstances({ runtimeStatus: ['Running'] });
        expect(running.map((s) => s.instanceId).sort()).toEqual(['other', 'vm:2']);
        const vms = await runtime.listInstances({ prefix: 'vm:' });
        expect(vms.map((s) => `${s.instanceId}=${s.runtimeStatus}`).sort()).toEqual(['vm:1=Completed', 'vm:2=Running']);
    });

    it('advanceUntil stops as soon as the condition holds and reports when nothing is left to run', async () => {
        const id = await runtime.startNew('fixtureApproval', { input: 5 * HOUR });
        await runtime.advanceUntil(async () => (await runtime.getStatus(id))?.runtimeStatus === 'Completed');
        expect(clock.now().toISOString()).toBe(new Date(START.getTime() + 5 * HOUR).toISOString());

        const waiting = await runtime.startNew('fixtureCollect', { instanceId: 'forever', input: 1 });
        await expect(
            runtime.advanceUntil(async () => (await runtime.getStatus(waiting))?.runtimeStatus === 'Completed'),
        ).rejects.toThrow(/nothing is left to run.*forever/);

        await runtime.startNew('fixtureApproval', { instanceId: 'far', input: 30 * 24 * HOUR });
        await expect(runtime.advanceUntil(() => false, { maxMs: HOUR })).rejects.toMatchObject({ code: 'TIMEOUT' });
    });

    it('waitForStatus on a virtual clock advances virtual time to the status', async () => {
        const id = await runtime.startNew('fixtureApproval', { input: 3 * HOUR });
        const status = await runtime.waitForStatus(id, (s) => s.runtimeStatus === 'Completed', {
            timeoutMs: 4 * HOUR,
        });
        expect(status.output).toEqual({ approved: false });
    });

    it('only a virtual clock can be advanced', async () => {
        const real = new DurableRuntime({ registry: functionRegistry() });
        try {
            await expect(real.advance(1000)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
        } finally {
            await real.close();
        }
    });
});
