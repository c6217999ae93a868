import { PROVIDER_COMMANDS_QUEUE } from '../../shared/contracts/messages';
import { LocalProviderChannel, startLocalProviderChannel } from '../support/localProviderChannel';
import { commands } from '../unit/contracts/fakeChannel';

/**
 * The crafted local envelope: the Storage-queue stand-in trusted the sequence number inside an unsigned
 * envelope, so `sequenceNumber: 1e15` made the session skip every later command of the VM, silently and for
 * good. On the broker, sequence numbers are the broker's own; whatever a sender claims, a signed command that
 * follows is carried out.
 */
let c: LocalProviderChannel;

beforeAll(async () => {
    c = await startLocalProviderChannel();
});

afterAll(async () => {
    await c.stop();
});

describe('a crafted message cannot silence a VM on the local broker', () => {
    it('an unsigned envelope claiming sequence number 1e15 is dead-lettered, and the next signed command is carried out', async () => {
        const { vmId, site } = c;
        const crafted = { v: 1, messageId: 'p', sessionId: vmId, sequenceNumber: 1e15, deliveryCount: 0, body: {} };
        const sender = c.client.createSender(PROVIDER_COMMANDS_QUEUE);
        // As a body (the old envelope) and as the broker's own annotations, in the VM's session.
        await sender.sendMessages({
            body: Buffer.from(JSON.stringify(crafted)),
            contentType: 'application/json',
            messageId: 'p',
            sessionId: vmId,
        });
        await sender.sendMessages({
            body: Buffer.from(JSON.stringify(crafted)),
            bodyType: 'data',
            messageAnnotations: { 'x-opt-sequence-number': 1e15, 'x-opt-enqueued-time': 0 },
            properties: { messageId: 'p2', groupId: vmId },
        });

        const dead = await c.deadLetters(2);
        for (const m of dead) {
            expect(m.deadLetterReason).toBe('MESSAGE_UNSIGNED');
            expect(Number(m.sequenceNumber)).toBeLessThan(1000);
        }

        const started = Date.now();
        const next = await c.send(commands.cycleCompleted(vmId));
        const seen = await c.eventually(() => c.sites.seen(site.siteId, next), 'the signed command carried out');
        expect(Number(seen.sequenceNumber)).toBeLessThan(1000);
        // Not after a gap timeout: at once.
        expect(Date.now() - started).toBeLessThan(10_000);
        const broker = c.host.providerBus!.broker;
        await c.eventually(
            () =>
                broker.messages(PROVIDER_COMMANDS_QUEUE).length === 0 &&
                broker.lockedCount(PROVIDER_COMMANDS_QUEUE) === 0
                    ? true
                    : undefined,
            'the signed command completed',
        );
    });
});
