import '../../functions/apiFailover';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { Drill, getDrill } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { describeOnEngines, isFinished, type EngineUnderTest } from '../support/durableEngines';
import { holdNextActivityCall } from './fixtures/holdActivity';
import { seedFailoverVm } from './lifecycle/failoverSeed';
import { callHttp, LifecycleHarness } from './lifecycle/harness';

// The drill's 30 s copy poll and the retry delays, a thousand times faster (the real engine has no virtual clock).
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

/**
 * A job's end is the last thing a drill step records: whoever sees the test failover (or its cleanup) job
 * Succeeded must find the drill row saying so too. On the real engine each activity is a queue round trip, so
 * a reader polling the job (an operator, `hvr simulate --test-failover`) landed between the job's and the drill's
 * writes and saw a Succeeded cleanup whose drill was still CleaningUp. Holding the drill write makes that window
 * as long as the test wants, on both engines.
 */
describeOnEngines('test failover: the job ends after the drill row', (engine) => {
    let h: LifecycleHarness;
    let restoreInfra: () => void;
    let seeded = 0;

    beforeEach(() => {
        h = new LifecycleHarness();
        restoreInfra = setFailoverInfrastructure(new DryRunFailoverInfrastructure());
    });
    afterEach(async () => {
        restoreInfra();
        await h.close();
    });

    /** Runs `start`, holding the drill write that sets `state`; returns the job's state while it was held. */
    async function jobStateWhileDrillHeld(
        e: EngineUnderTest,
        state: Drill['state'],
        start: () => Promise<{ jobId: string; instanceId: string }>,
    ): Promise<{ jobId: string; heldJobState: string | undefined }> {
        const held = holdNextActivityCall(
            'recordDrill',
            (input) => (input as { changes?: { state?: string } }).changes?.state === state,
        );
        try {
            const { jobId, instanceId } = await start();
            const finished = e.waitFor(instanceId, isFinished, 120_000);
            await held.entered;
            const heldJobState = (await getJob(h.scope, jobId))?.state;
            held.release();
            expect(await finished).toMatchObject({ runtimeStatus: 'Completed' });
            return { jobId, heldJobState };
        } finally {
            held.restore();
        }
    }

    it('test failover and cleanup: while the drill row is being written the job is still InProgress', async () => {
        const e = engine();
        const vmId = `order${e.name}${++seeded}`;
        await seedFailoverVm(h, vmId, [['c1', 0x11]]);
        const accepted = async (name: string, body: unknown) => {
            const response = await callHttp(e, 'apiFailoverAction', {
                method: 'POST',
                path: `replicationProtectedItems/${vmId}/${name}`,
                params: { vmId, action: name },
                body,
            });
            expect(response.status).toBe(202);
            return response.jsonBody as { jobId: string; instanceId: string; drillId: string };
        };

        let drillId = '';
        const drill = await jobStateWhileDrillHeld(e, 'Completed', async () => {
            const started = await accepted('testFailover', { recoveryPoint: { type: 'Latest' } });
            drillId = started.drillId;
            return started;
        });
        expect(drill.heldJobState).toBe('InProgress');
        expect(await getJob(h.scope, drill.jobId)).toMatchObject({ state: 'Succeeded' });
        expect(await getDrill(h.scope, vmId, drillId)).toMatchObject({ state: 'Completed' });

        const cleanup = await jobStateWhileDrillHeld(e, 'CleanedUp', () =>
            accepted('testFailoverCleanup', { comments: 'checked' }),
        );
        expect(cleanup.heldJobState).toBe('InProgress');
        expect(await getJob(h.scope, cleanup.jobId)).toMatchObject({ state: 'Succeeded' });
        expect(await getDrill(h.scope, vmId, drillId)).toMatchObject({ state: 'CleanedUp', cleanedUp: true });
    });
});
