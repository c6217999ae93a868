import * as df from 'durable-functions';
import type { OrchestrationContext } from 'durable-functions';
import {
    BlobInstanceStore,
    connectionFromString,
    DurableRuntime,
    functionRegistry,
    stateContainerName,
    VirtualClock,
} from '../../packages/functions-local/src';
import { holdNextActivityCall } from './fixtures/holdActivity';

const calls: string[] = [];
const step = df.app.activity('persistStep', {
    handler: (input: string) => {
        calls.push(input);
        return `${input} done`;
    },
});

df.app.orchestration('persistChild', function* (context: OrchestrationContext) {
    return (yield step(`child ${context.df.getInput<string>()}`)) as string;
});

df.app.orchestration('persistParent', function* (context: OrchestrationContext) {
    const first = (yield step('a')) as string;
    yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + 3600_000));
    const second = (yield context.df.callSubOrchestrator('persistChild', 'b')) as string;
    return [first, second];
});

const START = new Date('2025-06-01T00:00:00.000Z');

describe('DurableRuntime over a BlobInstanceStore: a runtime that stops anywhere resumes from the saved state', () => {
    const container = connectionFromString(process.env.AZURITE_CONNECTION_STRING!).blob.getContainerClient(
        stateContainerName(`Persist${Date.now().toString(36)}`),
    );
    const clock = new VirtualClock(START);
    const open = async (): Promise<DurableRuntime> => {
        const store = new BlobInstanceStore(container);
        await store.load();
        return new DurableRuntime({ registry: functionRegistry(), clock, store });
    };
    afterAll(async () => {
        await container.deleteIfExists();
    });

    it('re-runs the activity in flight, re-arms the timer, re-runs the child’s activity, links the child', async () => {
        // 1. Stops while activity "a" runs: its result is lost with the runtime.
        let held = holdNextActivityCall('persistStep');
        let runtime = await open();
        await runtime.startNew('persistParent', { instanceId: 'parent-1' });
        void runtime.runUntilIdle().catch(() => undefined);
        await held.entered;
        await runtime.close();
        held.release();

        // 2. The next runtime runs "a" again (at least once: the stopped runtime's call finished, unheard), then
        //    stops while the timer waits.
        runtime = await open();
        expect(await runtime.resume()).toMatchObject({ activities: [{ name: 'persistStep', input: '"a"' }] });
        await runtime.runUntilIdle();
        expect(calls).toEqual(['a', 'a']);
        expect((await runtime.getStatus('parent-1'))?.runtimeStatus).toBe('Running');
        await runtime.close();

        // 3. The timer is armed again at its fire time; the child starts and stops inside its activity.
        runtime = await open();
        expect((await runtime.resume()).timers).toEqual([
            expect.objectContaining({ instanceId: 'parent-1', fireAtMs: START.getTime() + 3600_000 }),
        ]);
        held = holdNextActivityCall('persistStep');
        void runtime.advance(3600_000).catch(() => undefined);
        await held.entered;
        await runtime.close();
        held.release();

        // 4. The child's activity runs again, the child completes and its parent gets the completion.
        runtime = await open();
        const plan = await runtime.resume();
        expect(plan.activities).toEqual([expect.objectContaining({ instanceId: 'parent-1:2', input: '"child b"' })]);
        const done = await runtime.waitForStatus('parent-1', (s) => s.runtimeStatus === 'Completed');
        expect(done.output).toEqual(['a done', 'child b done']);
        expect(calls).toEqual(['a', 'a', 'child b', 'child b']);
        expect((await runtime.getStatus('parent-1:2'))?.runtimeStatus).toBe('Completed');
        await runtime.close();
    });
});
