import { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { setPorts } from '../../../shared/ports';
import { getReplicaDisk, replaceReplicaDisk } from '../../../shared/state/disks';
import { functionRegistry } from '../../../packages/functions-local/src';
import { protectedItemFor } from '../../crash/support';
import { ReplicaHarness } from '../replica/harness';
import '../../../functions/apiReplicationProtectedItems';

interface Shown {
    replicationHealth: string;
    healthReasons: { code: string }[];
}

/** Calls one of the API's GET functions as the host would, on the harness's storage. */
async function get(h: ReplicaHarness, fnName: string, path: string, params: Record<string, string> = {}) {
    const restore = setPorts({ storage: () => h.storage });
    const previous = process.env.STATE_TABLE_PREFIX;
    process.env.STATE_TABLE_PREFIX = h.scope.tablePrefix;
    try {
        const fn = functionRegistry().get(fnName);
        const request = new HttpRequest({ method: 'GET', url: `http://127.0.0.1/api/${path}`, params });
        return (await fn.handler(request, new InvocationContext({ functionName: fn.name }))) as HttpResponseInit;
    } finally {
        restore();
        if (previous === undefined) delete process.env.STATE_TABLE_PREFIX;
        else process.env.STATE_TABLE_PREFIX = previous;
    }
}

describe('the state shown while a replica is torn', () => {
    it('is "being repaired" (Warning) while a disk row holds a write intent, Normal again once it is cleared', async () => {
        const h = new ReplicaHarness();
        await h.addDisk('disk0', 1024 * 1024);
        await h.addDisk('disk1', 1024 * 1024);
        await protectedItemFor(h, ['disk0', 'disk1']);
        const row = (await getReplicaDisk(h.scope, h.vmId, 'disk1'))!;
        // A merge cut off after its intent: the row says log 1 is being applied.
        const torn = await replaceReplicaDisk(
            h.scope,
            row,
            { applyingSequence: 1, applyingLogId: '11111111-2222-3333-4444-555555555555' },
            h.clock.now().toISOString(),
        );

        const one = await get(h, 'apiReplicationProtectedItem', `replicationProtectedItems/${h.vmId}`, {
            vmId: h.vmId,
        });
        const item = (one.jsonBody as { properties: Shown }).properties;
        expect(item.replicationHealth).toBe('Warning');
        expect(item.healthReasons.map((r) => r.code)).toEqual(['ReplicaBeingRepaired']);

        const list = await get(h, 'apiReplicationProtectedItems', 'replicationProtectedItems');
        const listed = (list.jsonBody as { value: { name: string; properties: Shown }[] }).value.find(
            (i) => i.name === h.vmId,
        )!;
        expect(listed.properties.replicationHealth).toBe('Warning');

        await replaceReplicaDisk(
            h.scope,
            torn,
            { applyingSequence: undefined, applyingLogId: undefined },
            h.clock.now().toISOString(),
        );
        const after = await get(h, 'apiReplicationProtectedItem', `replicationProtectedItems/${h.vmId}`, {
            vmId: h.vmId,
        });
        expect((after.jsonBody as { properties: Shown }).properties).toMatchObject({
            replicationHealth: 'Normal',
            healthReasons: [],
        });
    });
});
