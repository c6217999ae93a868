import '../../../functions/apiReplicationPolicies';
import '../../../functions/apiSites';
import '../../../functions/apiReplicationJobs';
import { resyncOrchestrationAvailable } from '../../../functions/apiReplicationProtectedItems';
// The worker loads every file; here the resync orchestration must be registered for the API to start it.
import '../../../orchestrations/resync';
import { LifecycleHarness } from '../../orchestrations/lifecycle/harness';
import { functionRegistry } from '../../../packages/functions-local/src';
import { providerSites } from '../../../functions/apiHttp';
import { ID_RULE } from '../../../shared/contracts/ids';
import { updateProtectedItem } from '../../../shared/state/protectedItems';

describe('management API against Azurite tables', () => {
    let h: LifecycleHarness;
    beforeEach(() => {
        h = new LifecycleHarness();
    });
    afterEach(() => h.close());

    const policy = (method: string, name: string, body?: unknown) =>
        h.http('apiReplicationPolicy', {
            method,
            path: `replicationPolicies/${name}`,
            params: { name },
            ...(body !== undefined ? { body } : {}),
        });

    it('registers every route with function-level auth', () => {
        const routes = functionRegistry()
            .byTriggerType('httpTrigger')
            .filter((f) => f.name.startsWith('api'))
            .map((f) => [f.trigger.route, f.trigger.authLevel]);
        expect(routes).toEqual(
            expect.arrayContaining([
                ['replicationPolicies', 'function'],
                ['replicationPolicies/{name}', 'function'],
                ['sites', 'function'],
                ['replicationProtectedItems', 'function'],
                ['replicationProtectedItems/{vmId}', 'function'],
                ['replicationProtectedItems/{vmId}/resync', 'function'],
                ['replicationProtectedItems/{vmId}/recoveryPoints', 'function'],
                ['replicationJobs', 'function'],
                ['replicationJobs/{jobId}', 'function'],
                ['replicationHealth', 'function'],
            ]),
        );
    });

    it('creates, reads, replaces, lists and deletes a replication policy', async () => {
        const created = await policy('PUT', 'gold', { copyFrequencySeconds: 30, recoveryPointRetentionHours: 24 });
        expect(created.status).toBe(201);
        expect(created.jsonBody).toMatchObject({ name: 'gold', properties: { copyFrequencySeconds: 30 } });
        const replaced = await policy('PUT', 'gold', { properties: { copyFrequencySeconds: 900 } });
        expect(replaced.status).toBe(200);
        expect((await policy('GET', 'gold')).jsonBody?.properties.copyFrequencySeconds).toBe(900);
        const list = await h.http('apiListReplicationPolicies', { method: 'GET', path: 'replicationPolicies' });
        expect(list.jsonBody?.value.map((p: { name: string }) => p.name)).toEqual(['gold']);
        expect((await policy('DELETE', 'gold')).status).toBe(204);
        const gone = await policy('GET', 'gold');
        expect(gone.status).toBe(404);
        expect(gone.jsonBody).toEqual({
            error: { code: 'NOT_FOUND', message: 'Replication policy gold does not exist.' },
        });
    });

    it('rejects an invalid policy with 400 VALIDATION_FAILED naming the field and the value', async () => {
        const bad = await policy('PUT', 'silver', { copyFrequencySeconds: 45 });
        expect(bad.status).toBe(400);
        expect(bad.jsonBody).toEqual({
            error: { code: 'VALIDATION_FAILED', message: 'copyFrequencySeconds must be 30, 300 or 900; got 45.' },
        });
        const notJson = await h.http('apiReplicationPolicy', {
            method: 'PUT',
            path: 'replicationPolicies/silver',
            params: { name: 'silver' },
        });
        expect(notJson.jsonBody?.error.code).toBe('VALIDATION_FAILED');
    });

    it('refuses to delete a policy in use (409)', async () => {
        await h.seedSiteAndPolicy();
        await h.enable('vmP');
        const res = await policy('DELETE', 'gold');
        expect(res.status).toBe(409);
        expect(res.jsonBody?.error.message).toMatch(/used by 1 protected item\(s\) \(vmP\)/);
    });

    it('registers and lists sites, validating the time zone', async () => {
        const created = await h.http('apiSites', {
            method: 'POST',
            path: 'sites',
            body: { siteId: 'paris', name: 'Paris DC', kind: 'VmmServer', timeZone: 'Europe/Paris' },
        });
        expect(created.status).toBe(201);
        // The provider's signing key is handed out once, with the registration.
        expect(created.jsonBody?.siteKey).toMatchObject({ siteId: 'paris', keyId: expect.any(String) });
        expect(Buffer.from(created.jsonBody?.siteKey.key as string, 'base64')).toHaveLength(32);
        const again = await h.http('apiSites', {
            method: 'POST',
            path: 'sites',
            body: { siteId: 'paris', timeZone: 'UTC' },
        });
        expect(again.status).toBe(200);
        expect(again.jsonBody?.siteKey).toBeUndefined();
        const list = await h.http('apiSites', { method: 'GET', path: 'sites' });
        expect(list.jsonBody?.value).toEqual([expect.objectContaining({ siteId: 'paris', timeZone: 'UTC' })]);
        const bad = await h.http('apiSites', {
            method: 'POST',
            path: 'sites',
            body: { siteId: 'x', timeZone: 'Paris' },
        });
        expect(bad.status).toBe(400);
        expect(bad.jsonBody?.error.message).toMatch(/^timeZone .*got "Paris"/);
    });

    it('enables protection (202 + job), lists items with state, health and RPO, and serves the job', async () => {
        await h.seedSiteAndPolicy();
        const res = await h.enable('vmQ');
        expect(res.status).toBe(202);
        await h.runtime.runUntilIdle();
        const items = await h.http('apiReplicationProtectedItems', {
            method: 'GET',
            path: 'replicationProtectedItems',
        });
        expect(items.jsonBody?.value).toEqual([
            expect.objectContaining({
                name: 'vmQ',
                properties: expect.objectContaining({
                    protectionState: 'InitialReplicationInProgress',
                    replicationHealth: 'Normal',
                }),
            }),
        ]);
        const job = await h.http('apiReplicationJob', {
            method: 'GET',
            path: `replicationJobs/${res.jsonBody?.jobId}`,
            params: { jobId: res.jsonBody?.jobId },
        });
        expect(job.jsonBody).toMatchObject({ kind: 'EnableProtection', state: 'Succeeded', vmId: 'vmQ' });
        const jobs = await h.http('apiReplicationJobs', {
            method: 'GET',
            path: 'replicationJobs',
            query: { vmId: 'vmQ' },
        });
        expect(jobs.jsonBody?.value).toHaveLength(1);
        const badState = await h.http('apiReplicationJobs', {
            method: 'GET',
            path: 'replicationJobs',
            query: { state: 'Done' },
        });
        expect(badState.status).toBe(400);
        const points = await h.http('apiProtectedItemRecoveryPoints', {
            method: 'GET',
            path: 'replicationProtectedItems/vmQ/recoveryPoints',
            params: { vmId: 'vmQ' },
        });
        expect(points.jsonBody).toEqual({ value: [], bytesHeld: 0, fullCopyBytes: 0, lastCleanRecoveryPointId: null });
    });

    it('answers enable errors with codes: unknown site 404, malformed VM 400, already protected 409', async () => {
        await h.seedSiteAndPolicy();
        const unknownSite = await h.http('apiReplicationProtectedItem', {
            method: 'PUT',
            path: 'replicationProtectedItems/vmR',
            params: { vmId: 'vmR' },
            body: {
                siteId: 'nowhere',
                policyName: 'gold',
                vm: { name: 'r', generation: 2, disks: [{ diskId: 'os', sizeBytes: 512, isOsDisk: true }] },
            },
        });
        expect(unknownSite.status).toBe(404);
        const malformed = await h.http('apiReplicationProtectedItem', {
            method: 'PUT',
            path: 'replicationProtectedItems/vmR',
            params: { vmId: 'vmR' },
            body: { siteId: 'site1', policyName: 'gold', vm: { name: 'r', generation: 3, disks: [] } },
        });
        expect(malformed.jsonBody).toEqual({
            error: { code: 'VALIDATION_FAILED', message: 'vm.generation must be 1 or 2; got 3.' },
        });
        await h.enable('vmR');
        await h.runtime.runUntilIdle();
        await h.completeInitialReplication('vmR');
        const again = await h.enable('vmR');
        expect(again.status).toBe(409);
        expect(again.jsonBody?.error.code).toBe('CONFLICT');
        // A VM belongs to the site that protected it: another site cannot claim it.
        expect(await providerSites(h.scope).siteOf('vmR')).toBe('site1');
        await expect(providerSites(h.scope).assignVm('vmR', 'other-site', h.clock.now())).rejects.toMatchObject({
            code: 'CONFLICT',
        });
    });

    it('refuses a 100-character VM id at the API, naming the id rule, before anything is created', async () => {
        await h.seedSiteAndPolicy();
        const vmId = 'v'.repeat(100);
        const res = await h.enable(vmId);
        expect(res.status).toBe(400);
        expect(res.jsonBody?.error).toMatchObject({
            code: 'VALIDATION_FAILED',
            message: expect.stringContaining(`vmId must be ${ID_RULE}`),
        });
        await h.runtime.runUntilIdle();
        expect(h.replicaCalls).toEqual([]);
        expect(h.published).toEqual([]);
        const trailingDot = await h.enable('vm.');
        expect(trailingDot.status).toBe(400);
        expect((await h.enable('v'.repeat(64))).status).toBe(202);
    });

    it('shows the RPO as unknown (null) until the first recovery point, then its age at request time', async () => {
        await h.seedSiteAndPolicy();
        await h.enable('vmT');
        await h.runtime.runUntilIdle();
        const get = async () =>
            (
                await h.http('apiReplicationProtectedItem', {
                    method: 'GET',
                    path: 'replicationProtectedItems/vmT',
                    params: { vmId: 'vmT' },
                })
            ).jsonBody?.properties as Record<string, unknown>;
        await h.runtime.advance(10 * 60_000);
        expect(await get()).toMatchObject({ protectionState: 'InitialReplicationInProgress', rpoSeconds: null });
        // A stored value (the monitor's last write) is never what the API reports.
        await updateProtectedItem(h.scope, 'vmT', () => ({ rpoSeconds: 1 }), h.clock.now().toISOString());
        expect((await get()).rpoSeconds).toBeNull();

        const capturedAt = new Date(h.clock.now().getTime() - 90_000);
        await h.completeInitialReplication('vmT', capturedAt);
        expect(await get()).toMatchObject({ protectionState: 'Protected', rpoSeconds: 90 });
        await h.runtime.advance(60_000);
        expect((await get()).rpoSeconds).toBe(150);
    });

    it('starts the resync orchestration, or marks the item resync-required when there is none', async () => {
        await h.seedSiteAndPolicy();
        await h.enable('vmS');
        await h.runtime.runUntilIdle();
        const early = await h.http('apiResyncProtectedItem', {
            method: 'POST',
            path: 'replicationProtectedItems/vmS/resync',
            params: { vmId: 'vmS' },
        });
        expect(early.status).toBe(409);
        await h.completeInitialReplication('vmS');
        const res = await h.http('apiResyncProtectedItem', {
            method: 'POST',
            path: 'replicationProtectedItems/vmS/resync',
            params: { vmId: 'vmS' },
        });
        expect(res.status).toBe(202);
        if (resyncOrchestrationAvailable()) {
            // Once orchestrations/resync.ts exists the request starts it instead of marking the item.
            expect(res.jsonBody).toMatchObject({ instanceId: 'resync:vmS' });
            return;
        }
        const item = await h.http('apiReplicationProtectedItem', {
            method: 'GET',
            path: 'replicationProtectedItems/vmS',
            params: { vmId: 'vmS' },
        });
        expect(item.jsonBody?.properties).toMatchObject({
            resynchronizationState: 'ResynchronizationRequired',
            resyncReason: 'OperatorRequested',
        });
    });
});
