import { Timer } from '@azure/functions';
import '../../functions/resyncScheduler';
import '../../orchestrations/resync';
import { SchedulerRun } from '../../functions/resyncScheduler';
import { instanceIds } from '../../shared/lifecycle/instances';
import { validateReplicationPolicy } from '../../shared/policy/replicationPolicy';
import { putPolicy } from '../../shared/state/policies';
import {
    createProtectedItem,
    PROTECTION_STATES,
    ResynchronizationState,
    updateProtectedItem,
} from '../../shared/state/protectedItems';
import { registerSite } from '../../shared/state/sites';
import { durableClientBindings, functionRegistry, invokeFunction } from '../../packages/functions-local/src';
import { LifecycleHarness, sampleVm } from './lifecycle/harness';

const timer: Timer = {
    isPastDue: false,
    schedule: { adjustForDST: true },
    scheduleStatus: { last: '', next: '', lastUpdated: '' },
};

describe('resync scheduler (timer)', () => {
    let h: LifecycleHarness;
    beforeEach(async () => {
        h = new LifecycleHarness();
        const at = h.clock.now().toISOString();
        await registerSite(
            h.scope,
            { siteId: 'paris', name: 'Paris', kind: 'HyperVSite', timeZone: 'Europe/Paris' },
            at,
        );
        await registerSite(h.scope, { siteId: 'tokyo', name: 'Tokyo', kind: 'HyperVSite', timeZone: 'Asia/Tokyo' }, at);
        // Default window 18:30–06:00 (crosses midnight), read in each site's zone.
        await putPolicy(h.scope, validateReplicationPolicy({ name: 'gold', copyFrequencySeconds: 300 }), at);
        // 01:00–05:00 in New York, whatever the site's zone.
        await putPolicy(
            h.scope,
            validateReplicationPolicy({
                name: 'nyc',
                copyFrequencySeconds: 300,
                offHoursWindow: { start: '01:00', end: '05:00', timeZone: 'America/New_York' },
            }),
            at,
        );
    });
    afterEach(() => h.close());

    async function item(
        vmId: string,
        siteId: string,
        state: ResynchronizationState,
        options: { reason?: string; policyName?: string; updatedAt?: string } = {},
    ): Promise<void> {
        const at = options.updatedAt ?? h.clock.now().toISOString();
        await createProtectedItem(h.scope, {
            vmId,
            siteId,
            vmName: vmId,
            generation: 2,
            policyName: options.policyName ?? 'gold',
            disks: sampleVm(vmId).disks,
            protectionState: 'Protected',
            protectionStateDescription: PROTECTION_STATES.Protected,
            resynchronizationState: state,
            ...(options.reason !== undefined ? { resyncReason: options.reason } : {}),
            replicationHealth: 'Critical',
            healthReasons: [],
            createdAt: at,
            updatedAt: at,
        });
    }

    async function fire(at: string): Promise<SchedulerRun> {
        h.clock.advanceTo(new Date(at));
        const { result } = await invokeFunction(functionRegistry().get('resyncScheduler'), timer, {
            bindings: [durableClientBindings(h.runtime)],
        });
        return result as SchedulerRun;
    }

    async function resyncStatus(vmId: string): Promise<string | undefined> {
        return (await h.runtime.getStatus(instanceIds.resync(vmId)))?.runtimeStatus;
    }

    it('registers an NCRONTAB timer every five minutes with the durable client', () => {
        const fn = functionRegistry().get('resyncScheduler');
        expect(fn.trigger).toMatchObject({ type: 'timerTrigger', schedule: '0 */5 * * * *' });
        expect(Object.values(fn.metadata.bindings).map((b) => b.type)).toContain('durableClient');
    });

    it('starts only VMs inside their window, across midnight and in the policy zone, and never twice', async () => {
        await item('vmParis', 'paris', 'ResynchronizationRequired', { reason: 'ChainGap' });
        await item('vmTokyo', 'tokyo', 'ResynchronizationRequired', { reason: 'InvalidLog' });
        await item('vmNyc', 'paris', 'ResynchronizationRequired', { reason: 'ChainGap', policyName: 'nyc' });
        await item('vmFine', 'paris', 'None');

        // 12:00 UTC: Paris 13:00 (out), Tokyo 21:00 (in), New York 07:00 (out).
        expect((await fire('2025-03-04T12:00:00Z')).started).toEqual(['vmTokyo']);
        // 03:30 UTC: Paris 04:30 (in: the window opened at 18:30 the day before), New York 22:30 (out).
        const night = await fire('2025-03-05T03:30:00Z');
        expect(night.started).toEqual(['vmParis']);
        expect(night.running).toEqual(['vmTokyo']);
        // The same minute again: both already run; nothing new starts.
        const again = await fire('2025-03-05T03:30:00Z');
        expect(again.started).toEqual([]);
        expect(again.running.sort()).toEqual(['vmParis', 'vmTokyo']);
        // 07:00 UTC: New York 02:00 (in its own zone's window, although Paris is out).
        expect((await fire('2025-03-05T07:00:00Z')).started).toEqual(['vmNyc']);
        expect(await resyncStatus('vmFine')).toBeUndefined();
        const status = await h.runtime.getStatus(instanceIds.resync('vmParis'));
        expect(status?.input).toMatchObject({ vmId: 'vmParis', siteId: 'paris', reason: 'ChainGap' });
    });

    it('keeps at most RESYNC_MAX_PER_SITE running per site, oldest first, and an operator request skips the window', async () => {
        process.env.RESYNC_MAX_PER_SITE = '2';
        try {
            await item('vmC', 'paris', 'ResynchronizationRequired', { updatedAt: '2025-03-01T00:00:03Z' });
            await item('vmA', 'paris', 'ResynchronizationRequired', { updatedAt: '2025-03-01T00:00:01Z' });
            await item('vmB', 'paris', 'ResynchronizationRequired', { updatedAt: '2025-03-01T00:00:02Z' });
            await item('vmNow', 'tokyo', 'ResynchronizationRequired', { reason: 'OperatorRequested' });

            // 20:00 UTC: Paris 21:00 (in); Tokyo 05:00 (out), but vmNow is an operator's request.
            const first = await fire('2025-03-04T20:00:00Z');
            expect(first.started.sort()).toEqual(['vmA', 'vmB', 'vmNow']);
            expect(first.waiting).toEqual(['vmC']);
            const second = await fire('2025-03-04T20:05:00Z');
            expect(second.started).toEqual([]);
            expect(second.waiting).toEqual(['vmC']);

            // One Paris resync finishes: the next pass starts the one left waiting.
            await updateProtectedItem(
                h.scope,
                'vmA',
                () => ({ resynchronizationState: 'ResynchronizationCompleted' }),
                h.clock.now().toISOString(),
            );
            await h.runtime.terminate(instanceIds.resync('vmA'), 'finished');
            expect((await fire('2025-03-04T20:10:00Z')).started).toEqual(['vmC']);
        } finally {
            delete process.env.RESYNC_MAX_PER_SITE;
        }
    });

    it('starts an operator request outside the window at once', async () => {
        await item('vmOp', 'paris', 'ResynchronizationRequired', { reason: 'OperatorRequested' });
        expect((await fire('2025-03-04T10:00:00Z')).started).toEqual(['vmOp']);
    });
});
