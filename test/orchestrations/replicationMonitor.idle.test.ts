import { invocationCounts } from '../../packages/functions-local/src';
import { durableLifecycleRaiser } from '../../shared/contracts/channel';
import {
    handleProviderCommand,
    HEARTBEAT_MONITOR_INTERVAL_MS,
    type ProviderCommandPorts,
} from '../../shared/contracts/commandHandler';
import { siteSessionId } from '../../shared/contracts/messages';
import { ProviderSitesTable } from '../../shared/contracts/providerSites';
import { signCommand } from '../../shared/contracts/signature';
import { healthThresholds } from '../../shared/health';
import { instanceIds } from '../../shared/lifecycle/instances';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import { MONITOR_MAX_SLEEP_MS, REPLICATION_MONITOR, type MonitorInput } from '../../orchestrations/replicationMonitor';
import { uniqueName } from '../support/azurite';
import { startEngineUnderTest, type EngineUnderTest } from '../support/durableEngines';
import { EngineHarness } from './lifecycle/engineHarness';
import { protectedVmRow } from './lifecycle/harness';

const HOUR = 3_600_000;
const IDLE_HOURS = 1;
const HEARTBEAT_EVERY_MS = 5_000;
const COPY_FREQUENCY_SECONDS = 30;

/** Executions of each function so far in this process (the host's counter: episodes and activities). */
function executions(): Map<string, number> {
    return new Map(invocationCounts().map((c) => [c.name, c.count]));
}

/**
 * What an idle protected VM costs in executions: two VMs of one site, their monitors running, no cycle at all,
 * and the provider's heartbeat every 5 s through the real command handler and the real presence table, for one
 * virtual hour. The monitors must wake when their thresholds, their longest sleep and the heartbeat interval
 * say, not per heartbeat and not in a loop: before heartbeats were held to HEARTBEAT_MONITOR_INTERVAL_MS each
 * beat woke each monitor (an episode and a table-reading activity), 720 times an hour per VM, which is what the
 * cost benchmark's idle window measured (docs/cost.md). Embedded only: it needs an hour of virtual time.
 */
describe('replication monitor: an idle protected VM', () => {
    let engine: EngineUnderTest;
    let h: EngineHarness;
    beforeAll(async () => {
        engine = await startEngineUnderTest('embedded');
    }, 120_000);
    afterAll(() => engine?.close());
    beforeEach(() => {
        h = new EngineHarness(engine);
    });
    afterEach(() => h.close());

    it('wakes per threshold, longest sleep and heartbeat interval over an idle hour, not per heartbeat', async () => {
        const runtime = engine.embedded!;
        const sites = new ProviderSitesTable(h.scope.conn, {
            sites: uniqueName('sites'),
            messageIds: uniqueName('msgids'),
        });
        const siteId = 'site1';
        const issued = await sites.registerSite({ siteId, name: 'Idle site', timeZone: 'UTC' }, h.now());
        const signer = { siteId, keyId: issued.keyId, key: Buffer.from(issued.key, 'base64') };
        const vmIds = ['vmIdle1', 'vmIdle2'];
        const at = h.now().toISOString();
        for (const vmId of vmIds) {
            await sites.assignVm(vmId, siteId, h.now());
            await createProtectedItem(h.scope, protectedVmRow(vmId, at));
            const input: MonitorInput = {
                vmId,
                siteId,
                diskIds: ['os', 'data'],
                copyFrequencySeconds: COPY_FREQUENCY_SECONDS,
                monitoringSince: at,
                lastCapturedAt: at,
                lastHeartbeatAt: at,
                generation: 0,
            };
            await engine.startNew(REPLICATION_MONITOR, { instanceId: instanceIds.replicationMonitor(vmId), input });
        }
        await runtime.runUntilIdle();

        const unused = (what: string) => () => Promise.reject(new Error(`an idle heartbeat does not ${what}`));
        const channel: ProviderCommandPorts = {
            clock: engine.clock,
            keys: sites,
            vms: sites,
            replay: sites,
            presence: sites,
            lifecycle: durableLifecycleRaiser({
                raiseEvent: (instanceId: string, eventName: string, data: unknown) =>
                    engine.raiseEvent(instanceId, eventName, data),
            }),
            grants: { issue: unused('issue grants') },
            events: { publish: unused('publish events') },
            log: { info: () => undefined, warn: () => undefined },
        };

        const before = executions();
        let beats = 0;
        for (let t = 0; t < IDLE_HOURS * HOUR; t += HEARTBEAT_EVERY_MS) {
            const command = {
                type: 'Heartbeat',
                version: 1,
                providerId: 'hv-01',
                vms: vmIds.map((vmId) => ({ vmId, pendingLogBytes: { os: 0, data: 0 } })),
            };
            const messageId = `beat-${++beats}`;
            const sessionId = siteSessionId(siteId);
            const signed = signCommand(command, signer, { messageId, sessionId, signedAt: h.now() });
            const outcome = await handleProviderCommand(
                {
                    body: signed.body,
                    messageId,
                    sessionId,
                    sequenceNumber: String(beats),
                    deliveryCount: 1,
                    applicationProperties: { ...signed.applicationProperties },
                },
                channel,
            );
            expect(outcome).toMatchObject({ action: 'complete', disposition: 'processed' });
            await runtime.advance(HEARTBEAT_EVERY_MS);
        }
        const after = executions();
        const ran = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);

        // What the monitor's design allows per VM: the first wake, one per forwarded heartbeat, one per longest
        // sleep and one per health threshold crossed (RPO Warning and Critical: no cycle comes); each wake is one
        // record activity and at most three episodes (the wake, the activity's completion, the generation's flush).
        const thresholds = healthThresholds(COPY_FREQUENCY_SECONDS);
        expect(thresholds.rpoCriticalSeconds * 1000).toBeLessThan(IDLE_HOURS * HOUR);
        const wakesPerVm =
            (IDLE_HOURS * HOUR) / HEARTBEAT_MONITOR_INTERVAL_MS + (IDLE_HOURS * HOUR) / MONITOR_MAX_SLEEP_MS + 2 + 1;
        const activities = ran('recordReplicationStatus');
        const episodes = ran(REPLICATION_MONITOR);
        expect(beats).toBe((IDLE_HOURS * HOUR) / HEARTBEAT_EVERY_MS);
        expect(activities).toBeLessThanOrEqual(vmIds.length * wakesPerVm);
        expect(episodes).toBeLessThanOrEqual(3 * vmIds.length * wakesPerVm);
        // Alive, not silent: at least one wake per longest sleep, and the heartbeats still reach the monitors.
        expect(activities).toBeGreaterThanOrEqual((vmIds.length * IDLE_HOURS * HOUR) / MONITOR_MAX_SLEEP_MS);
        for (const vmId of vmIds) {
            const item = (await getProtectedItem(h.scope, vmId))!;
            const codes = item.healthReasons.map((r) => r.code);
            expect(codes).toContain('RpoCriticalThresholdExceeded');
            expect(codes).not.toContain('ProviderHeartbeatMissing');
            expect(codes).not.toContain('ProviderNotConnected');
            expect((await engine.status(instanceIds.replicationMonitor(vmId)))?.runtimeStatus).toBe('Running');
            await engine.terminate(instanceIds.replicationMonitor(vmId), 'test over');
        }
        await runtime.runUntilIdle();
    }, 600_000);
});
