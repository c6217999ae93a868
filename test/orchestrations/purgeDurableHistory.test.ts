import '../../functions/purgeDurableHistory';
import { purgeFinishedInstances } from '../../functions/purgeDurableHistory';
import { setPorts } from '../../shared/ports';
import {
    durableClientBindings,
    functionRegistry,
    invokeFunction,
    type Clock,
} from '../../packages/functions-local/src';
import { describeOnEngines, isFinished, type EngineUnderTest } from '../support/durableEngines';
import './fixtures/events';

const DAY = 24 * 3600_000;

/**
 * On both engines. The instances are created now on the engine's clock; the timer function runs with its own
 * clock `days` ahead of the engine's, so "older than the retention" needs no waiting (the purge filter is the
 * engine's: created before the cutoff, status terminal).
 */
describeOnEngines(
    'purgeDurableHistory: finished instances older than the retention leave the task hub',
    (engine, engineName) => {
        let restore: (() => void) | undefined;
        let n = 0;
        const id = (name: string) => `${name}-${engineName}-${++n}`;
        afterEach(() => {
            restore?.();
            restore = undefined;
            delete process.env.DURABLE_HISTORY_RETENTION_DAYS;
        });

        /** Runs the timer function as if `days` had passed on the engine's clock. */
        async function purgeAfter(e: EngineUnderTest, days: number): Promise<void> {
            const ahead: Clock = { now: () => new Date(e.clock.now().getTime() + days * DAY) };
            restore = setPorts({ clock: ahead });
            try {
                await invokeFunction(
                    functionRegistry().get('purgeDurableHistory'),
                    { isPastDue: false },
                    { bindings: [durableClientBindings(e)] },
                );
            } finally {
                restore();
                restore = undefined;
            }
        }

        it('purges Completed, Failed and Terminated instances created before the cutoff, never running ones', async () => {
            const completed = id('completed');
            const terminated = id('terminated');
            const running = id('running');
            await engine().startNew('fixtureCollect', { instanceId: completed, input: 0 });
            await engine().startNew('fixtureCollect', { instanceId: terminated, input: 1 });
            await engine().startNew('fixtureCollect', { instanceId: running, input: 1 });
            await engine().waitFor(completed, isFinished);
            await engine().waitFor(running, (s) => s.runtimeStatus === 'Running');
            await engine().waitFor(terminated, (s) => s.runtimeStatus === 'Running');
            await engine().terminate(terminated, 'operator');
            await engine().waitFor(terminated, isFinished);

            // A day later nothing is old enough.
            await purgeAfter(engine(), 1);
            for (const instanceId of [completed, terminated, running])
                expect(await engine().status(instanceId)).toBeDefined();

            await purgeAfter(engine(), 31);
            expect(await engine().status(completed)).toBeUndefined();
            expect(await engine().status(terminated)).toBeUndefined();
            expect((await engine().status(running))?.runtimeStatus).toBe('Running');
            await engine().terminate(running, 'test over');
        });

        it('honours DURABLE_HISTORY_RETENTION_DAYS and refuses a retention under one day', async () => {
            const twoDaysOld = id('two-days-old');
            await engine().startNew('fixtureCollect', { instanceId: twoDaysOld, input: 0 });
            await engine().waitFor(twoDaysOld, isFinished);
            process.env.DURABLE_HISTORY_RETENTION_DAYS = '3';
            await purgeAfter(engine(), 2);
            expect(await engine().status(twoDaysOld)).toBeDefined();
            process.env.DURABLE_HISTORY_RETENTION_DAYS = '1';
            await purgeAfter(engine(), 2);
            expect(await engine().status(twoDaysOld)).toBeUndefined();
            const client = { purgeInstanceHistoryBy: () => Promise.resolve({ instancesDeleted: 0 }) };
            await expect(purgeFinishedInstances(client, engine().clock.now(), 0)).rejects.toMatchObject({
                code: 'CONFIG_MISSING',
            });
        });
    },
);
