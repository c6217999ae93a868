import '../../functions/apiFailover';
import '../../functions/apiReplicationJobs';
import { functionRegistry } from '../../packages/functions-local/src';
import { DURABLE_TIME_SCALE_SETTING } from '../../shared/durableTime';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { listFailoverDisks } from '../../shared/failover/failoverDisks';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { instanceIds } from '../../shared/lifecycle/instances';
import { getDrill } from '../../shared/state/drills';
import { getJob } from '../../shared/state/jobs';
import { getProtectedItem } from '../../shared/state/protectedItems';
import { describeOnEngines, isFinished } from '../support/durableEngines';
import { HeldActivity, holdNextActivityCall } from './fixtures/holdActivity';
import { seedFailoverVm } from './lifecycle/failoverSeed';
import { ApiResponse, callHttp, LifecycleHarness } from './lifecycle/harness';

// The drill's 30 s copy poll and the retry delays, a thousand times faster (the real engine has no virtual clock).
process.env[DURABLE_TIME_SCALE_SETTING] = '0.001';

/**
 * A cancelled test failover is terminated, and a terminate does not stop an activity under way: on the real
 * engine the cancel answers, and the drill's cleanup runs, while `createDrillResources` is still creating or
 * `startDrillCopies` still starting the copies. What they make after the cleanup looked must not stay. (The
 * embedded runtime takes the terminate once the activity returned; the outcome must be the same.)
 */
describeOnEngines('cancel of a test failover while an activity of it is under way', (engine) => {
    let h: LifecycleHarness;
    let infra: DryRunFailoverInfrastructure;
    let restoreInfra: () => void;
    let seeded = 0;
    beforeEach(() => {
        h = new LifecycleHarness();
        infra = new DryRunFailoverInfrastructure();
        restoreInfra = setFailoverInfrastructure(infra);
    });
    afterEach(async () => {
        restoreInfra();
        await h.close();
    });

    interface Held {
        entered: Promise<void>;
        release(): void;
    }

    /** Holds the first managed disk create: the Azure call under way at the stop. */
    function holdFirstDiskCreate(): Held {
        let inCreate!: () => void;
        let release!: () => void;
        const entered = new Promise<void>((resolve) => (inCreate = resolve));
        const gate = new Promise<void>((resolve) => (release = resolve));
        const createDisk = infra.createManagedDisk.bind(infra);
        infra.createManagedDisk = async (spec) => {
            inCreate();
            await gate;
            return createDisk(spec);
        };
        return { entered, release };
    }

    /**
     * Starts a drill, cancels it while `held` holds `activityName`'s call, lets the call go on once the cancel's
     * cleanup has ended (the real engine) or could not yet start (embedded), and waits for both to end.
     */
    async function cancelDuring(activityName: string, hold: () => Held): Promise<{ vmId: string; drillId: string }> {
        const e = engine();
        const vmId = `cancel${e.name}${++seeded}`;
        await seedFailoverVm(h, vmId, [['c1', 0x11]]);
        const held = hold();
        const activity = functionRegistry().get(activityName);
        const handler = activity.handler;
        let ended!: () => void;
        const activityEnded = new Promise<void>((resolve) => (ended = resolve));
        activity.handler = async (...args: unknown[]) => {
            try {
                return await handler(...args);
            } finally {
                ended();
            }
        };
        try {
            const started = await callHttp(e, 'apiFailoverAction', {
                method: 'POST',
                path: `replicationProtectedItems/${vmId}/testFailover`,
                params: { vmId, action: 'testFailover' },
            });
            expect(started.status).toBe(202);
            const { jobId, drillId } = started.jsonBody as { jobId: string; drillId: string };
            void e.progress();
            await held.entered;

            const cancelling = callHttp(e, 'apiReplicationJobAction', {
                method: 'POST',
                path: `replicationJobs/${jobId}/cancel`,
                params: { jobId, action: 'cancel' },
            });
            let timer: NodeJS.Timeout | undefined;
            const early = await Promise.race([
                cancelling,
                new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 10_000))),
            ]);
            clearTimeout(timer);
            // The real engine: the cancel has answered and its cleanup runs to its end before the call returns.
            if (early) await e.waitFor(instanceIds.testFailoverCleanup(vmId), isFinished, 120_000);
            held.release();
            await activityEnded;
            const cancelled: ApiResponse = await cancelling;
            expect(cancelled.status).toBe(200);
            expect(cancelled.jsonBody).toMatchObject({ jobId, state: 'Cancelled', cleanupJobId: expect.any(String) });
            await e.waitFor(instanceIds.testFailoverCleanup(vmId), isFinished, 120_000);
            expect(await getJob(h.scope, jobId)).toMatchObject({ state: 'Cancelled' });
            expect(await getJob(h.scope, cancelled.jsonBody!.cleanupJobId as string)).toMatchObject({
                kind: 'TestFailoverCleanup',
                state: 'Succeeded',
            });
            return { vmId, drillId };
        } finally {
            activity.handler = handler;
            held.release();
        }
    }

    async function expectNothingLeft(vmId: string, drillId: string): Promise<void> {
        expect(await infra.listDrillResources(drillId)).toEqual([]);
        expect(await listFailoverDisks(h.scope.conn, vmId, drillId)).toEqual([]);
        expect(await getDrill(h.scope, vmId, drillId)).toMatchObject({ state: 'CleanedUp', cleanedUp: true });
        expect((await getProtectedItem(h.scope, vmId))?.testFailoverState).toBe('None');
    }

    it('leaves no resource in Azure, whatever createDrillResources created after the stop', async () => {
        const { vmId, drillId } = await cancelDuring('createDrillResources', holdFirstDiskCreate);
        await expectNothingLeft(vmId, drillId);
    }, 300_000);

    it('leaves no failover disk, whatever startDrillCopies started after the stop', async () => {
        let held: HeldActivity | undefined;
        try {
            const { vmId, drillId } = await cancelDuring('startDrillCopies', () => {
                held = holdNextActivityCall('startDrillCopies');
                return held;
            });
            expect(infra.operations).toEqual([]);
            await expectNothingLeft(vmId, drillId);
        } finally {
            held?.restore();
        }
    }, 300_000);
});
