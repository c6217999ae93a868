import {
    handleProviderCommand,
    HEARTBEAT_MONITOR_INTERVAL_MS,
    ProviderCommandDelivery,
    ProviderDigestRequestEvent,
} from '../../../shared/contracts/commandHandler';
import { MAX_COMMAND_BYTES } from '../../../shared/contracts/messages';
import { signMessage } from '../../../shared/contracts/signature';
import { HvrError } from '../../../shared/errors';
import { healthThresholds } from '../../../shared/health';
import { defaultGeometry } from '../../../shared/resync/digest';
import { decodeDigestRequest } from '../../../shared/resync/manifest';
import { RESYNC_DIGEST_REQUEST_EVENT, ResyncDigestRequestEvent } from '../../../orchestrations/resync/events';
import { commands, fakeChannel, NOW, SITE_A, SITE_B, signedDelivery } from './fakeChannel';

describe('provider commands that are carried out', () => {
    it('Register records the provider and raises nothing', async () => {
        const channel = fakeChannel();
        const outcome = await handleProviderCommand(signedDelivery(commands.register()), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', disposition: 'processed', type: 'Register' });
        expect(channel.writes.map((w) => w.kind)).toEqual(['registration', 'remember']);
    });

    it('Heartbeat records presence and raises ProviderHeartbeat on each VM monitor', async () => {
        const channel = fakeChannel();
        channel.runningInstances.add('monitor:vm-a1');
        channel.runningInstances.add('monitor:vm-a2');
        const outcome = await handleProviderCommand(signedDelivery(commands.heartbeat()), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', notes: [] });
        expect(channel.writes[0]).toEqual({
            kind: 'heartbeat',
            siteId: 'site-a',
            providerId: 'hv-01',
            vmCount: 2,
            pending: 2048,
        });
        expect(channel.writes.filter((w) => w.kind === 'raise')).toEqual([
            {
                kind: 'raise',
                instanceId: 'monitor:vm-a1',
                eventName: 'ProviderHeartbeat',
                payload: {
                    vmId: 'vm-a1',
                    siteId: 'site-a',
                    at: NOW.toISOString(),
                    pendingLogBytes: { d0: 1000, d1: 24 },
                },
            },
            expect.objectContaining({ instanceId: 'monitor:vm-a2', eventName: 'ProviderHeartbeat' }),
        ]);
    });

    it('a second heartbeat inside the interval is recorded but wakes no monitor', async () => {
        const channel = fakeChannel();
        channel.runningInstances.add('monitor:vm-a1');
        channel.runningInstances.add('monitor:vm-a2');
        await handleProviderCommand(signedDelivery(commands.heartbeat()), channel.ports);
        expect(channel.writes.filter((w) => w.kind === 'raise')).toHaveLength(2);
        channel.writes.length = 0;
        const outcome = await handleProviderCommand(signedDelivery(commands.heartbeat()), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', disposition: 'processed' });
        expect(channel.writes.map((w) => w.kind)).toEqual(['heartbeat', 'remember']);
        expect(HEARTBEAT_MONITOR_INTERVAL_MS).toBeLessThan(healthThresholds(30).heartbeatWarningSeconds * 1000);
    });

    it.each([
        ['InitialReplicationProgress', commands.initialProgress(), 'protect:vm-a1', 'InitialReplicationProgress'],
        ['CycleCompleted', commands.cycleCompleted(), 'monitor:vm-a1', 'CycleUploaded'],
        ['ResyncProgress', commands.resyncProgress(), 'resync:vm-a1', 'ResyncProgress'],
        ['ResyncCompleted', commands.resyncCompleted(), 'resync:vm-a1', 'ResyncCompleted'],
        ['ProviderError', commands.providerError(), 'monitor:vm-a1', 'ProviderError'],
        ['ResyncDigestRequest', commands.digestRequest(), 'resync:vm-a1', 'ResyncDigestRequest'],
    ])('%s raises %s on %s', async (_type, command, instanceId, eventName) => {
        const channel = fakeChannel();
        channel.runningInstances.add(instanceId);
        const outcome = await handleProviderCommand(signedDelivery(command), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', disposition: 'processed', notes: [] });
        expect(channel.writes[0]).toMatchObject({ kind: 'raise', instanceId, eventName, payload: { vmId: 'vm-a1' } });
        expect(channel.writes[1]).toMatchObject({ kind: 'remember', siteId: 'site-a' });
    });

    it('CycleCompleted carries consistency, capture time and the logs to the orchestration', async () => {
        const channel = fakeChannel();
        await handleProviderCommand(signedDelivery(commands.cycleCompleted()), channel.ports);
        expect(channel.writes[0]).toMatchObject({
            payload: {
                cycleId: 'cycle-7',
                consistency: 'AppConsistent',
                capturedAt: '2025-01-15T10:29:00Z',
                logs: [{ diskId: 'd0', sequence: 7, logId: '7a7a7a7a-0000-4000-8000-000000000007', bytes: 4096 }],
            },
        });
    });

    it('ResyncCompleted reports 100 percent for each finished disk', async () => {
        const channel = fakeChannel();
        await handleProviderCommand(signedDelivery(commands.resyncCompleted()), channel.ports);
        expect(channel.writes[0]).toMatchObject({ payload: { resyncId: 'rs-1', disks: { d0: 100, d1: 100 } } });
    });

    it('ResyncDigestRequest hands the resync the disk, round and request as the orchestration reads them', async () => {
        const channel = fakeChannel();
        channel.runningInstances.add('resync:vm-a1');
        await handleProviderCommand(signedDelivery(commands.digestRequest()), channel.ports);
        const raised = channel.writes[0] as { eventName: string; payload: unknown };
        expect(raised.eventName).toBe(RESYNC_DIGEST_REQUEST_EVENT);
        const payload: ResyncDigestRequestEvent = raised.payload as ProviderDigestRequestEvent;
        expect(payload).toEqual({
            vmId: 'vm-a1',
            resyncId: 'rs-1',
            diskId: 'd0',
            round: 2,
            request: 'AQIgEDAg',
            at: NOW.toISOString(),
        });
        // The orchestration's activity decodes exactly these bytes.
        expect(decodeDigestRequest(Buffer.from(payload.request, 'base64'), defaultGeometry(1024 ** 3))).toEqual({
            level: 1,
            ranges: [
                { first: 32, count: 16 },
                { first: 96, count: 32 },
            ],
        });
    });

    it('ResyncDigestRequest with no resync running is completed with a note, not failed', async () => {
        const channel = fakeChannel();
        const outcome = await handleProviderCommand(signedDelivery(commands.digestRequest()), channel.ports);
        expect(outcome).toMatchObject({
            action: 'complete',
            notes: ['ResyncDigestRequest not delivered: no orchestration resync:vm-a1'],
        });
    });

    it('UploadGrantRequest issues one grant per log of its own VM and publishes an UploadGrant event', async () => {
        const channel = fakeChannel();
        const delivery = signedDelivery(commands.grantRequest(), { messageId: 'req-msg-1' });
        const outcome = await handleProviderCommand(delivery, channel.ports);
        expect(outcome).toMatchObject({ action: 'complete' });
        expect(channel.writes[0]).toEqual({
            kind: 'grant',
            targets: [
                {
                    siteId: 'site-a',
                    vmId: 'vm-a1',
                    diskId: 'd0',
                    sequence: 7,
                    logId: '7a7a7a7a-0000-4000-8000-000000000007',
                },
                {
                    siteId: 'site-a',
                    vmId: 'vm-a1',
                    diskId: 'd1',
                    sequence: 3,
                    logId: '3a3a3a3a-0000-4000-8000-000000000003',
                },
            ],
        });
        expect(channel.writes[1]).toMatchObject({
            kind: 'publish',
            event: {
                type: 'UploadGrant',
                siteId: 'site-a',
                vmId: 'vm-a1',
                messageId: 'grant:req-msg-1',
                payload: { requestId: 'req-7', grants: [{ diskId: 'd0' }, { diskId: 'd1' }] },
            },
        });
    });

    it('a site-level ProviderError is logged, not raised', async () => {
        const channel = fakeChannel();
        const outcome = await handleProviderCommand(signedDelivery(commands.providerError(null)), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete' });
        expect(channel.writes.map((w) => w.kind)).toEqual(['remember']);
        expect(channel.logs).toContainEqual(
            expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ code: 'VSS_FAILED' }) }),
        );
    });

    it('records, without failing, an event raised to an orchestration that is not running', async () => {
        const channel = fakeChannel();
        const outcome = await handleProviderCommand(signedDelivery(commands.cycleCompleted()), channel.ports);
        expect(outcome).toEqual({
            action: 'complete',
            disposition: 'processed',
            type: 'CycleCompleted',
            notes: ['CycleUploaded not delivered: no orchestration monitor:vm-a1'],
        });
        expect(channel.logs).toContainEqual(
            expect.objectContaining({ level: 'info', message: expect.stringContaining('monitor:vm-a1') }),
        );
    });

    it('accepts the body already parsed (Functions worker) the same as raw bytes', async () => {
        const channel = fakeChannel();
        const delivery = signedDelivery(commands.cycleCompleted());
        const parsed = { ...delivery, body: JSON.parse((delivery.body as Buffer).toString('utf8')) };
        expect(await handleProviderCommand(parsed, channel.ports)).toMatchObject({ action: 'complete' });
    });

    it('accepts a message signed with a rotated key while the old one is still valid', async () => {
        const channel = fakeChannel();
        const k2 = Buffer.alloc(32, 9);
        channel.keys.set('site-a/k2', { keyId: 'k2', key: k2, revoked: false });
        const delivery = signedDelivery(commands.register(), { signer: { siteId: 'site-a', keyId: 'k2', key: k2 } });
        expect(await handleProviderCommand(delivery, channel.ports)).toMatchObject({ action: 'complete' });
        expect(await handleProviderCommand(signedDelivery(commands.register()), channel.ports)).toMatchObject({
            action: 'complete',
        });
    });
});

describe('provider commands that are dead-lettered and change nothing', () => {
    async function expectRejected(
        delivery: ProviderCommandDelivery,
        reason: string,
        description: RegExp,
        channel = fakeChannel(),
    ): Promise<void> {
        const before = channel.writes.length;
        const outcome = await handleProviderCommand(delivery, channel.ports);
        expect(outcome).toEqual({ action: 'deadLetter', reason, description: expect.stringMatching(description) });
        if (outcome.action === 'deadLetter') expect(outcome.description).not.toMatch(/\n/);
        expect(channel.writes.slice(before)).toEqual([]);
        expect(channel.logs).toContainEqual(
            expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ reason }) }),
        );
    }

    it('a body that is not JSON: MESSAGE_NOT_JSON', async () => {
        const delivery = signedDelivery(commands.register());
        await expectRejected({ ...delivery, body: Buffer.from('{"type":') }, 'MESSAGE_NOT_JSON', /not JSON/);
    });

    it('a body that fails its schema: MESSAGE_INVALID naming the field', async () => {
        const bad = { ...commands.cycleCompleted(), consistency: 'Maybe' };
        await expectRejected(signedDelivery(bad), 'MESSAGE_INVALID', /consistency/);
    });

    it('an oversized body (over 256 KiB): MESSAGE_TOO_LARGE, before parsing', async () => {
        const delivery = signedDelivery(commands.register());
        const huge = Buffer.alloc(MAX_COMMAND_BYTES + 1, 0x20);
        await expectRejected({ ...delivery, body: huge }, 'MESSAGE_TOO_LARGE', /262145 bytes/);
    });

    it('an unknown type: MESSAGE_UNKNOWN_TYPE', async () => {
        await expectRejected(
            signedDelivery({ type: 'WipeDisk', version: 1, vmId: 'vm-a1' }),
            'MESSAGE_UNKNOWN_TYPE',
            /WipeDisk/,
        );
    });

    it('a version this service does not speak: MESSAGE_VERSION', async () => {
        await expectRejected(
            signedDelivery({ ...commands.cycleCompleted(), version: 2 }),
            'MESSAGE_VERSION',
            /version 2/,
        );
    });

    it('a command naming a VM of another site: MESSAGE_OTHER_SITE, logged with both sites', async () => {
        const channel = fakeChannel();
        await expectRejected(
            signedDelivery(commands.grantRequest('vm-b1')),
            'MESSAGE_OTHER_SITE',
            /vm-b1 belongs to another site/,
            channel,
        );
        expect(channel.logs).toContainEqual(
            expect.objectContaining({
                fields: expect.objectContaining({ siteId: 'site-a', vmId: 'vm-b1', owner: 'site-b' }),
            }),
        );
    });

    it('a digest request about a VM of another site: MESSAGE_OTHER_SITE, nothing raised', async () => {
        await expectRejected(signedDelivery(commands.digestRequest('vm-b1')), 'MESSAGE_OTHER_SITE', /vm-b1/);
    });

    it('a digest request sent in the site session instead of its VM session: MESSAGE_SESSION', async () => {
        await expectRejected(
            signedDelivery(commands.digestRequest(), { sessionId: 'site:site-a' }),
            'MESSAGE_SESSION',
            /sessionId "vm-a1"/,
        );
    });

    it('a digest request whose request is not base64: MESSAGE_INVALID naming the field', async () => {
        await expectRejected(
            signedDelivery({ ...commands.digestRequest(), request: 'AQIg!DAg' }),
            'MESSAGE_INVALID',
            /request/,
        );
    });

    it('a heartbeat listing one foreign VM among its own: MESSAGE_OTHER_SITE, no heartbeat recorded', async () => {
        await expectRejected(signedDelivery(commands.heartbeat(['vm-a1', 'vm-b1'])), 'MESSAGE_OTHER_SITE', /vm-b1/);
    });

    it('a VM registered with no site: MESSAGE_VM_UNKNOWN', async () => {
        await expectRejected(
            signedDelivery(commands.cycleCompleted('vm-unknown')),
            'MESSAGE_VM_UNKNOWN',
            /not registered/,
        );
    });

    it('site B signing as itself about site A VM cannot pass by claiming site A', async () => {
        // Claims site-a in the envelope but only has site-b's key.
        const delivery = signedDelivery(commands.cycleCompleted(), { signer: { ...SITE_B, siteId: 'site-a' } });
        await expectRejected(delivery, 'MESSAGE_SIGNATURE', /does not match/);
    });

    it('a bad signature: MESSAGE_SIGNATURE', async () => {
        const delivery = signedDelivery(commands.cycleCompleted());
        const tampered = {
            ...delivery,
            body: Buffer.from(JSON.stringify({ ...commands.cycleCompleted(), cycleId: 'cycle-8' })),
        };
        await expectRejected(tampered, 'MESSAGE_SIGNATURE', /does not match/);
    });

    it('a message moved to another session after signing: MESSAGE_SIGNATURE', async () => {
        const delivery = signedDelivery(commands.cycleCompleted());
        await expectRejected({ ...delivery, sessionId: 'vm-a2' }, 'MESSAGE_SIGNATURE', /does not match/);
    });

    it('an unsigned message: MESSAGE_UNSIGNED naming what is missing', async () => {
        const delivery = signedDelivery(commands.register());
        const { signature: _s, ...rest } = delivery.applicationProperties as Record<string, unknown>;
        await expectRejected({ ...delivery, applicationProperties: rest }, 'MESSAGE_UNSIGNED', /signature missing/);
    });

    it('an unknown key id or site: MESSAGE_SITE_UNKNOWN', async () => {
        await expectRejected(
            signedDelivery(commands.register(), { signer: { ...SITE_A, keyId: 'k404' } }),
            'MESSAGE_SITE_UNKNOWN',
            /No key k404/,
        );
    });

    it('a revoked key: MESSAGE_KEY_REVOKED', async () => {
        const channel = fakeChannel();
        channel.keys.set('site-a/k1', { keyId: 'k1', key: SITE_A.key, revoked: true });
        await expectRejected(signedDelivery(commands.register()), 'MESSAGE_KEY_REVOKED', /revoked/, channel);
    });

    it('a VM command sent in the site session: MESSAGE_SESSION (one VM stays in order only in its own session)', async () => {
        await expectRejected(
            signedDelivery(commands.cycleCompleted(), { sessionId: 'site:site-a' }),
            'MESSAGE_SESSION',
            /sessionId "vm-a1"/,
        );
    });

    it('a stale message (signed 16 minutes ago): MESSAGE_STALE', async () => {
        const signedAt = new Date(NOW.getTime() - 16 * 60_000);
        await expectRejected(signedDelivery(commands.cycleCompleted(), { signedAt }), 'MESSAGE_STALE', /960 s ago/);
    });

    it('a message from the future (provider clock 10 minutes ahead): MESSAGE_STALE', async () => {
        const signedAt = new Date(NOW.getTime() + 10 * 60_000);
        await expectRejected(signedDelivery(commands.cycleCompleted(), { signedAt }), 'MESSAGE_STALE', /future/);
    });

    it('a replayed message (same id, sent again): MESSAGE_REPLAYED, the first one took effect once', async () => {
        const channel = fakeChannel();
        const first = signedDelivery(commands.grantRequest(), { messageId: 'dup-1', sequenceNumber: '10' });
        expect(await handleProviderCommand(first, channel.ports)).toMatchObject({ action: 'complete' });
        const effects = channel.writes.length;
        const replay = { ...first, sequenceNumber: '11' };
        await expectRejected(replay, 'MESSAGE_REPLAYED', /dup-1.*already processed/, channel);
        expect(channel.writes.length).toBe(effects);
    });

    it('a missing messageId: MESSAGE_INVALID', async () => {
        const delivery = signedDelivery(commands.register());
        await expectRejected({ ...delivery, messageId: undefined }, 'MESSAGE_INVALID', /messageId/);
    });
});

describe('duplicates and transient failures', () => {
    it('a redelivery of a processed message (same sequence number) completes without doing anything again', async () => {
        const channel = fakeChannel();
        const delivery = signedDelivery(commands.cycleCompleted(), { sequenceNumber: '42' });
        await handleProviderCommand(delivery, channel.ports);
        const effects = channel.writes.length;
        const outcome = await handleProviderCommand({ ...delivery, deliveryCount: 2 }, channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', disposition: 'duplicate' });
        expect(channel.writes.length).toBe(effects);
    });

    it('abandons (for redelivery) when the durable client fails transiently, and remembers nothing', async () => {
        const channel = fakeChannel();
        channel.failNext.port = 'raise';
        channel.failNext.error = new Error('socket hang up');
        const delivery = signedDelivery(commands.cycleCompleted());
        expect(await handleProviderCommand(delivery, channel.ports)).toEqual({
            action: 'abandon',
            reason: 'TRANSIENT',
            description: 'socket hang up',
        });
        expect(channel.seen.size).toBe(0);
        // The redelivery is processed normally.
        expect(await handleProviderCommand({ ...delivery, deliveryCount: 2 }, channel.ports)).toMatchObject({
            action: 'complete',
            disposition: 'processed',
        });
    });

    it("abandons when the ownership lookup is unavailable (storage down is not the provider's fault)", async () => {
        const channel = fakeChannel();
        channel.failNext.port = 'siteOf';
        channel.failNext.error = new HvrError('TIMEOUT', 'Table call timed out');
        const outcome = await handleProviderCommand(signedDelivery(commands.cycleCompleted()), channel.ports);
        expect(outcome).toMatchObject({ action: 'abandon', reason: 'TIMEOUT' });
        expect(channel.writes).toEqual([]);
    });

    it('dead-letters with its code when the dispatch fails for good (a non-recoverable error)', async () => {
        const channel = fakeChannel();
        channel.failNext.port = 'publish';
        channel.failNext.error = new HvrError('FORBIDDEN', 'The app identity may not send to provider-events.');
        const outcome = await handleProviderCommand(signedDelivery(commands.grantRequest()), channel.ports);
        expect(outcome).toMatchObject({ action: 'deadLetter', reason: 'FORBIDDEN' });
    });

    it('signing covers key order independently: a provider that writes keys in another order still verifies', async () => {
        const channel = fakeChannel();
        const delivery = signedDelivery(commands.register());
        const reordered = JSON.stringify({
            version: 1,
            providerVersion: '1.0.0',
            hostName: 'hv-01.contoso.local',
            kind: 'HyperVHost',
            providerId: 'hv-01',
            type: 'Register',
        });
        const props = delivery.applicationProperties as Record<string, string>;
        const signature = signMessage(
            SITE_A.key,
            {
                siteId: 'site-a',
                keyId: 'k1',
                timestamp: props.timestamp!,
                messageId: delivery.messageId!,
                sessionId: delivery.sessionId!,
            },
            JSON.parse(reordered),
        );
        const outcome = await handleProviderCommand(
            { ...delivery, body: Buffer.from(reordered), applicationProperties: { ...props, signature } },
            channel.ports,
        );
        expect(outcome).toMatchObject({ action: 'complete' });
    });
});
