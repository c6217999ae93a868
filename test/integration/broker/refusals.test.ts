import { ServiceBusReceivedMessage } from '@azure/service-bus';
import { PROVIDER_COMMANDS_QUEUE } from '../../../shared/contracts/messages';
import { signCommand } from '../../../shared/contracts/signature';
import { uniqueName } from '../../support/azurite';
import { LocalProviderChannel, startLocalProviderChannel } from '../../support/localProviderChannel';
import { commands } from '../../unit/contracts/fakeChannel';

let c: LocalProviderChannel;

beforeAll(async () => {
    // A short duplicate-detection window, so that a replay gets past the queue to the pipeline's own check, and
    // Premium's message size, so that an oversized command reaches the pipeline (Standard refuses it at send).
    c = await startLocalProviderChannel({
        serviceBus: { duplicateDetectionWindowSeconds: 1, maxMessageSizeBytes: 1024 * 1024 },
    });
});

afterAll(async () => {
    await c.stop();
});

/** Sends raw properties and body, as a broken or hostile sender would. */
async function sendRaw(body: Buffer, props: Record<string, string>, messageId: string, sessionId: string) {
    await c.client.createSender(PROVIDER_COMMANDS_QUEUE).sendMessages({
        body,
        contentType: 'application/json',
        messageId,
        sessionId,
        applicationProperties: props,
    });
}

describe('every refused command is dead-lettered on the local broker with its own reason code', () => {
    it('one reason per refusal kind, a one-line description, and a log line that names both', async () => {
        const { site, vmId } = c;
        const otherSite = uniqueName('site');
        const otherVm = uniqueName('vm');
        await c.sites.registerSite({ siteId: otherSite, name: 'Lyon', timeZone: 'Europe/Paris' }, new Date());
        await c.sites.assignVm(otherVm, otherSite, new Date());
        const revoked = await c.sites.rotateSiteKey(site.siteId, new Date());
        await c.sites.revokeSiteKey(site.siteId, revoked.keyId, new Date());

        const expected = new Map<string, string>();
        const refuse = async (reason: string, send: () => Promise<string>) => expected.set(await send(), reason);

        await refuse('MESSAGE_SIGNATURE', async () => {
            const id = uniqueName('bad-signature');
            const signed = signCommand(commands.heartbeat([vmId]), site, {
                messageId: id,
                sessionId: `site:${site.siteId}`,
                signedAt: new Date(),
            });
            const tampered = Buffer.from(JSON.stringify({ ...commands.heartbeat([vmId]), providerId: 'evil' }));
            await sendRaw(tampered, signed.applicationProperties, id, `site:${site.siteId}`);
            return id;
        });
        await refuse('MESSAGE_UNSIGNED', async () => {
            const id = uniqueName('unsigned');
            await sendRaw(Buffer.from(JSON.stringify(commands.register())), { siteId: site.siteId }, id, 'x');
            return id;
        });
        await refuse('MESSAGE_NOT_JSON', async () => {
            const id = uniqueName('not-json');
            await sendRaw(Buffer.from('{"type":'), { siteId: site.siteId }, id, 'x');
            return id;
        });
        await refuse('MESSAGE_SITE_UNKNOWN', () =>
            c.send(commands.register(), { signer: { ...site, siteId: uniqueName('nosite') } }),
        );
        await refuse('MESSAGE_KEY_REVOKED', () =>
            c.send(commands.register(), {
                signer: { siteId: site.siteId, keyId: revoked.keyId, key: Buffer.from(revoked.key, 'base64') },
            }),
        );
        await refuse('MESSAGE_STALE', () =>
            c.send(commands.cycleCompleted(vmId), { signedAt: new Date(Date.now() - 20 * 60_000) }),
        );
        await refuse('MESSAGE_INVALID', () => c.send({ ...commands.cycleCompleted(vmId), logs: 'none' }));
        await refuse('MESSAGE_UNKNOWN_TYPE', () => c.send({ type: 'Reboot', version: 1, vmId }));
        await refuse('MESSAGE_VERSION', () => c.send({ ...commands.cycleCompleted(vmId), version: 9 }));
        await refuse('MESSAGE_SESSION', () =>
            c.send(commands.cycleCompleted(vmId), { sessionId: `site:${site.siteId}` }),
        );
        await refuse('MESSAGE_OTHER_SITE', () => c.send(commands.cycleCompleted(otherVm)));
        await refuse('MESSAGE_VM_UNKNOWN', () => c.send(commands.cycleCompleted(uniqueName('novm'))));
        await refuse('MESSAGE_TOO_LARGE', () => c.send({ ...commands.register(), hostName: 'h'.repeat(300 * 1024) }));
        // A replay: a message id already carried out, sent again as a new message after the queue forgot it.
        const original = await c.send(commands.heartbeat([vmId]));
        await c.eventually(() => c.sites.seen(site.siteId, original), 'the original carried out');
        await new Promise((r) => setTimeout(r, 1_500));
        await c.send(commands.heartbeat([vmId]), { messageId: original });
        expected.set(`${original}#replay`, 'MESSAGE_REPLAYED');

        const dead = await c.deadLetters(expected.size);
        const reasonOf = (m: ServiceBusReceivedMessage) => [String(m.messageId), m.deadLetterReason];
        const byId = new Map(dead.map(reasonOf) as [string, string][]);
        for (const [id, reason] of expected) {
            expect([id, byId.get(id.replace('#replay', ''))]).toEqual([id, reason]);
        }
        // Every kind has its own code.
        expect(new Set(expected.values()).size).toBe(expected.size);
        for (const m of dead) {
            expect(m.deadLetterErrorDescription).toMatch(/^\S.{5,511}$/);
            const logged = c.lines.find(
                (l) => l.includes('Provider command dead-lettered') && l.includes(String(m.messageId)),
            );
            expect(logged).toContain(m.deadLetterReason);
        }
        expect(c.lines.join('\n')).not.toContain('[object Object]');
        expect(c.host.providerBus!.broker.messages(PROVIDER_COMMANDS_QUEUE)).toEqual([]);
    });
});
