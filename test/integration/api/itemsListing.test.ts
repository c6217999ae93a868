import '../../../functions/apiReplicationProtectedItems';
import { listProtectedItemsAsTheyAre, withRepairState } from '../../../shared/replica/repairState';
import { createReplicaDiskRecord } from '../../../shared/state/disks';
import { createProtectedItem, listProtectedItems } from '../../../shared/state/protectedItems';
import { LifecycleHarness, protectedVmRow } from '../../orchestrations/lifecycle/harness';

/**
 * The items listing reads the items and the disks holding a write intent at once (one round trip): its answer
 * must be what the item-by-item reading gives, repairs and suspicious churn included.
 */
describe('GET /api/replicationProtectedItems: one round trip, the same answers', () => {
    let h: LifecycleHarness;
    beforeEach(() => {
        h = new LifecycleHarness();
    });
    afterEach(() => h.close());

    async function seed(): Promise<void> {
        const at = h.clock.now().toISOString();
        const captured = new Date(h.clock.now().getTime() - 95_000).toISOString();
        await createProtectedItem(h.scope, protectedVmRow('vm-a', at, { lastCapturedAt: captured }));
        await createProtectedItem(
            h.scope,
            protectedVmRow('vm-b', at, {
                lastCapturedAt: captured,
                suspiciousChurn: { recoveryPointId: 'vm-b:c-9', capturedAt: captured, score: 0.97 },
            }),
        );
        await createProtectedItem(h.scope, protectedVmRow('vm-c', at, { siteId: 'site2' }));
        for (const [vmId, applying] of [
            ['vm-a', 4],
            ['vm-c', undefined],
        ] as const) {
            await createReplicaDiskRecord(h.scope, {
                vmId,
                diskId: 'os',
                siteId: 'site1',
                virtualSize: 64 * 2 ** 20,
                blobName: `${vmId}/os.vhd`,
                state: 'Replicating',
                sequence: 3,
                ...(applying !== undefined ? { applyingSequence: applying, applyingLogId: 'log-4' } : {}),
                appliedBytes: 0,
                createdAt: at,
                updatedAt: at,
            } as never);
        }
    }

    it('equals the items read one by one, with the replica being repaired and the churn shown', async () => {
        await seed();
        const list = await h.http('apiReplicationProtectedItems', { method: 'GET', path: 'replicationProtectedItems' });
        expect(list.status).toBe(200);
        const listed = list.jsonBody!.value as { name: string; properties: Record<string, unknown> }[];
        expect(listed.map((i) => i.name)).toEqual(['vm-a', 'vm-b', 'vm-c']);
        for (const item of listed) {
            const one = await h.http('apiReplicationProtectedItem', {
                method: 'GET',
                path: `replicationProtectedItems/${item.name}`,
                params: { vmId: item.name },
            });
            // The item's own read adds its recovery point totals; everything the list shows is the same.
            const { lastCleanRecoveryPointId: _c, recoveryPointBytesHeld: _b, ...alone } = one.jsonBody!.properties;
            expect(item.properties).toEqual(alone);
        }
        const a = listed.find((i) => i.name === 'vm-a')!.properties;
        expect(a.replicationHealth).not.toBe('Normal');
        expect((a.healthReasons as { code: string }[]).map((r) => r.code)).toContain('ReplicaBeingRepaired');
        const b = listed.find((i) => i.name === 'vm-b')!.properties;
        expect(b.replicationHealth).toBe('Critical');
        expect((b.healthReasons as { code: string }[]).map((r) => r.code)).toEqual(['SuspiciousChurn']);
        const bySite = await h.http('apiReplicationProtectedItems', {
            method: 'GET',
            path: 'replicationProtectedItems',
            query: { siteId: 'site2' },
        });
        expect(bySite.jsonBody!.value).toEqual([listed[2]]);
    });

    it('gives what the two reads one after the other gave, for every item', async () => {
        await seed();
        const now = h.clock.now();
        const before = await withRepairState(h.scope, await listProtectedItems(h.scope), now);
        expect(await listProtectedItemsAsTheyAre(h.scope, {}, now)).toEqual(before);
        expect(await listProtectedItemsAsTheyAre(h.scope, { siteId: 'site2' }, now)).toEqual(
            before.filter((i) => i.siteId === 'site2'),
        );
    });
});
