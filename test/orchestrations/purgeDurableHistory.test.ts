import '../../functions/purgeDurableHistory';
import { purgeFinishedInstances } from '../../functions/purgeDurableHistory';
import { setPorts } from '../../shared/ports';
import {
    durableClientBindings,
    DurableRuntime,
    functionRegistry,
    invokeFunction,
    VirtualClock,
} from '../../packages/functions-local/src';
import './fixtures/events';

const DAY = 24 * 3600_000;

describe('purgeDurableHistory: finished instances older than the retention leave the task hub', () => {
    let clock: VirtualClock;
    let runtime: DurableRuntime;
    let restore: () => void;
    beforeEach(() => {
        clock = new VirtualClock(new Date('2025-05-01T00:00:00Z'));
        runtime = new DurableRuntime({ registry: functionRegistry(), clock });
        restore = setPorts({ clock });
    });
    afterEach(async () => {
        restore();
        delete process.env.DURABLE_HISTORY_RETENTION_DAYS;
        await runtime.close();
    });

    it('purges Completed, Failed and Terminated instances created before the cutoff, never running ones', async () => {
        await runtime.startNew('fixtureCollect', { instanceId: 'old-completed', input: 0 });
        await runtime.startNew('fixtureCollect', { instanceId: 'old-terminated', input: 1 });
        await runtime.startNew('fixtureCollect', { instanceId: 'old-running', input: 1 });
        await runtime.runUntilIdle();
        await runtime.terminate('old-terminated', 'operator');
        await runtime.runUntilIdle();
        await runtime.advance(31 * DAY);
        await runtime.startNew('fixtureCollect', { instanceId: 'recent-completed', input: 0 });
        await runtime.runUntilIdle();

        await invokeFunction(
            functionRegistry().get('purgeDurableHistory'),
            { isPastDue: false },
            { bindings: [durableClientBindings(runtime)] },
        );

        const left = (await runtime.listInstances()).map((s) => `${s.instanceId}:${s.runtimeStatus}`);
        expect(left.sort()).toEqual(['old-running:Running', 'recent-completed:Completed']);
    });

    it('honours DURABLE_HISTORY_RETENTION_DAYS and refuses a retention under one day', async () => {
        await runtime.startNew('fixtureCollect', { instanceId: 'two-days-old', input: 0 });
        await runtime.runUntilIdle();
        await runtime.advance(2 * DAY);
        process.env.DURABLE_HISTORY_RETENTION_DAYS = '3';
        await invokeFunction(
            functionRegistry().get('purgeDurableHistory'),
            { isPastDue: false },
            { bindings: [durableClientBindings(runtime)] },
        );
        expect(await runtime.getStatus('two-days-old')).toBeDefined();
        process.env.DURABLE_HISTORY_RETENTION_DAYS = '1';
        await invokeFunction(
            functionRegistry().get('purgeDurableHistory'),
            { isPastDue: false },
            { bindings: [durableClientBindings(runtime)] },
        );
        expect(await runtime.getStatus('two-days-old')).toBeUndefined();
        const client = { purgeInstanceHistoryBy: () => Promise.resolve({ instancesDeleted: 0 }) };
        await expect(purgeFinishedInstances(client, clock.now(), 0)).rejects.toMatchObject({ code: 'CONFIG_MISSING' });
    });
});
