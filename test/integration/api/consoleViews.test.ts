import '../../../functions/apiReplicationProtectedItems';
import '../../../functions/apiSites';
import { instanceIds, lifecycleEvents } from '../../../shared/lifecycle/instances';
import { createProtectedItem } from '../../../shared/state/protectedItems';
import {
    appendRpoSample,
    listRpoSamples,
    pruneRpoHistory,
    RPO_HISTORY_RETENTION_HOURS,
} from '../../../shared/state/rpoHistory';
import { providerSites } from '../../../functions/apiHttp';
import { registerSite } from '../../../shared/state/sites';
import { MonitorInput, REPLICATION_MONITOR } from '../../../orchestrations/replicationMonitor';
import { LifecycleHarness, protectedVmRow, sampleVm, START } from '../../orchestrations/lifecycle/harness';

const MINUTE = 60_000;

/** What the console reads beyond the items and jobs: RPO history, replica disks, events, providers. */
describe('console views of the management API (Azurite)', () => {
    let h: LifecycleHarness;
    beforeEach(() => {
        h = new LifecycleHarness();
    });
    afterEach(() => h.close());

    async function protectedVm(vmId: string): Promise<void> {
        const at = START.toISOString();
        const vm = sampleVm(vmId);
        await createProtectedItem(h.scope, protectedVmRow(vmId, at));
        const input: MonitorInput = {
            vmId,
            siteId: 'site1',
            diskIds: vm.disks.map((d) => d.diskId),
            copyFrequencySeconds: 300,
            monitoringSince: at,
            lastCapturedAt: at,
            lastHeartbeatAt: at,
            generation: 0,
        };
        await h.runtime.startNew(REPLICATION_MONITOR, { instanceId: instanceIds.replicationMonitor(vmId), input });
        await h.runtime.runUntilIdle();
    }

    const get = (fn: string, path: string, params: Record<string, string>, query: Record<string, string> = {}) =>
        h.http(fn, { method: 'GET', path, params, query });

    it('serves the RPO the monitor measured at each wake, the same values as its metric, oldest first', async () => {
        await protectedVm('vmA');
        for (let i = 0; i < 6; i++) {
            await h.runtime.advance(5 * MINUTE);
            await h.runtime.raiseEvent(instanceIds.replicationMonitor('vmA'), lifecycleEvents.heartbeat, {
                vmId: 'vmA',
                siteId: 'site1',
                at: h.clock.now().toISOString(),
                pendingLogBytes: {},
            });
            await h.runtime.runUntilIdle();
        }
        const response = await get('apiProtectedItemRpoHistory', 'replicationProtectedItems/vmA/rpoHistory', {
            vmId: 'vmA',
        });
        expect(response.status).toBe(200);
        const body = response.jsonBody as {
            since: string;
            until: string;
            rpoSecondsNow: number;
            value: { at: string; rpoSeconds: number }[];
        };
        // One sample per wake, as the RPO metric: the same values at the same times (two wakes at one instant,
        // or a replayed one, write one row).
        const metric = new Map(
            h.metrics.filter((m) => m.name === 'ReplicationRpoSeconds').map((m) => [m.at.toISOString(), m.value]),
        );
        expect(body.value.length).toBeGreaterThanOrEqual(6);
        expect(new Map(body.value.map((s) => [s.at, s.rpoSeconds]))).toEqual(metric);
        expect([...body.value].sort((a, b) => a.at.localeCompare(b.at))).toEqual(body.value);
        expect(body.rpoSecondsNow).toBe(30 * 60);
        expect(Date.parse(body.until) - Date.parse(body.since)).toBe(24 * 3600_000);

        const bad = await get(
            'apiProtectedItemRpoHistory',
            'replicationProtectedItems/vmA/rpoHistory',
            { vmId: 'vmA' },
            { hours: '25' },
        );
        expect(bad.status).toBe(400);
        expect(bad.jsonBody).toEqual({
            error: { code: 'VALIDATION_FAILED', message: 'hours must be a whole number from 1 to 24; got "25".' },
        });
        const missing = await get('apiProtectedItemRpoHistory', 'replicationProtectedItems/vmZ/rpoHistory', {
            vmId: 'vmZ',
        });
        expect(missing.status).toBe(404);
    });

    it('keeps a day of samples: the daily prune drops older rows of every VM; a repeated sample is one row', async () => {
        const t0 = Date.parse('2025-03-01T00:00:00Z');
        const at = (h: number) => new Date(t0 + h * 3600_000).toISOString();
        await appendRpoSample(h.scope, 'vmB', { at: at(0), rpoSeconds: 10 });
        await appendRpoSample(h.scope, 'vmB', { at: at(1), rpoSeconds: 20 });
        await appendRpoSample(h.scope, 'vmB', { at: at(1), rpoSeconds: 20 });
        await appendRpoSample(h.scope, 'vmC', { at: at(0.5), rpoSeconds: 5 });
        expect(await listRpoSamples(h.scope, 'vmB', new Date(t0 - 1))).toEqual([
            { at: at(0), rpoSeconds: 10 },
            { at: at(1), rpoSeconds: 20 },
        ]);
        await appendRpoSample(h.scope, 'vmB', { at: at(RPO_HISTORY_RETENTION_HOURS + 0.75), rpoSeconds: 30 });
        const now = new Date(t0 + (RPO_HISTORY_RETENTION_HOURS + 0.75) * 3600_000);
        expect(await pruneRpoHistory(h.scope, now)).toBe(2);
        expect(await listRpoSamples(h.scope, 'vmB', new Date(t0 - 1))).toEqual([
            { at: at(1), rpoSeconds: 20 },
            { at: at(RPO_HISTORY_RETENTION_HOURS + 0.75), rpoSeconds: 30 },
        ]);
        expect(await listRpoSamples(h.scope, 'vmC', new Date(t0 - 1))).toEqual([]);
        expect(await pruneRpoHistory(h.scope, now)).toBe(0);
    });

    it('serves the replica disks, the events and a site’s providers with their version and last heartbeat', async () => {
        await protectedVm('vmD');
        await h.runtime.advance(20 * MINUTE);
        await h.runtime.raiseEvent(instanceIds.replicationMonitor('vmD'), lifecycleEvents.heartbeat, {
            vmId: 'vmD',
            siteId: 'site1',
            at: h.clock.now().toISOString(),
            pendingLogBytes: {},
        });
        await h.runtime.runUntilIdle();
        const events = await get('apiProtectedItemEvents', 'replicationProtectedItems/vmD/events', { vmId: 'vmD' });
        expect(events.status).toBe(200);
        const list = (events.jsonBody as { value: { kind: string; severity: string }[] }).value;
        expect(list[0]).toMatchObject({ kind: 'ReplicationHealthChanged', severity: 'Warning' });
        const disks = await get('apiProtectedItemReplicaDisks', 'replicationProtectedItems/vmD/replicaDisks', {
            vmId: 'vmD',
        });
        expect(disks.status).toBe(200);
        expect(disks.jsonBody).toEqual({ value: [] }); // no replica disk row was created in this test

        await registerSite(
            h.scope,
            { siteId: 'site1', name: 'Site 1', kind: 'HyperVSite', timeZone: 'UTC' },
            START.toISOString(),
        );
        const sites = providerSites(h.scope);
        await sites.recordRegistration(
            'site1',
            { providerId: 'hv01', kind: 'HyperVHost', hostName: 'hv01.contoso.local', providerVersion: '1.2.3' },
            START,
        );
        await sites.recordHeartbeat('site1', 'hv01', new Date(START.getTime() + MINUTE), 3, 0, 0);
        const providers = await get('apiSiteProviders', 'sites/site1/providers', { siteId: 'site1' });
        expect(providers.jsonBody).toEqual({
            value: [
                {
                    providerId: 'hv01',
                    kind: 'HyperVHost',
                    hostName: 'hv01.contoso.local',
                    providerVersion: '1.2.3',
                    registeredAt: START.toISOString(),
                    lastHeartbeatAt: new Date(START.getTime() + MINUTE).toISOString(),
                    vmCount: 3,
                    pendingLogBytes: 0,
                },
            ],
        });
        const unknown = await get('apiSiteProviders', 'sites/nowhere/providers', { siteId: 'nowhere' });
        expect(unknown.status).toBe(404);
    });
});
