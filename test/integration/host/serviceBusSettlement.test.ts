import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROVIDER_COMMANDS_QUEUE } from '../../../shared/contracts/messages';
import { LocalProviderChannel, startLocalProviderChannel } from '../../support/localProviderChannel';
import { commands } from '../../unit/contracts/fakeChannel';

/** An app folder whose host.json has only the Service Bus section given. */
function appRootWith(serviceBus: Record<string, unknown>): string {
    const dir = mkdtempSync(join(tmpdir(), 'hvr-settle-'));
    writeFileSync(join(dir, 'host.json'), JSON.stringify({ version: '2.0', extensions: { serviceBus } }));
    return dir;
}

let channel: LocalProviderChannel | undefined;
afterEach(async () => {
    await channel?.stop();
    channel = undefined;
});

describe("the local host settles provider commands as host.json's serviceBus section says", () => {
    it('with autoCompleteMessages off and no settlement, the command is delivered again until it is dead-lettered', async () => {
        channel = await startLocalProviderChannel({
            appRoot: appRootWith({ autoCompleteMessages: false, maxConcurrentSessions: 1 }),
            serviceBus: { maxDeliveryCount: 3 },
        });
        const c = channel;
        const messageId = await c.send(commands.heartbeat([c.vmId]), { sessionId: `site:${c.site.siteId}` });

        const [dead] = await c.deadLetters(1);
        expect(dead).toMatchObject({ messageId, deadLetterReason: 'MaxDeliveryCountExceeded' });
        // Carried out once, then seen again as a redelivery of the same broker message (not a replay).
        expect(await c.sites.seen(c.site.siteId, messageId)).toBeDefined();
        const unsettled = c.lines.filter((l) => l.includes('left unsettled (autoCompleteMessages is off)'));
        expect(unsettled.length).toBe(3);
        expect(c.lines.some((l) => l.includes('MESSAGE_REPLAYED'))).toBe(false);
    });

    it('with autoCompleteMessages on (the default), the command is completed once', async () => {
        channel = await startLocalProviderChannel({ appRoot: appRootWith({ autoCompleteMessages: true }) });
        const c = channel;
        expect(c.host.functions.find((f) => f.name === 'providerCommands')?.detail).toMatch(
            /from Service Bus via PROVIDER_BUS \(the local broker\)/,
        );
        const messageId = await c.send(commands.heartbeat([c.vmId]), { sessionId: `site:${c.site.siteId}` });
        await c.eventually(() => c.sites.seen(c.site.siteId, messageId), 'the command carried out');
        const broker = c.host.providerBus!.broker;
        await c.eventually(
            () =>
                broker.messages(PROVIDER_COMMANDS_QUEUE).length === 0 &&
                broker.lockedCount(PROVIDER_COMMANDS_QUEUE) === 0
                    ? true
                    : undefined,
            'the command completed',
        );
        expect(broker.messages(`${PROVIDER_COMMANDS_QUEUE}/$DeadLetterQueue`)).toEqual([]);
        expect(c.lines.some((l) => l.includes('left unsettled'))).toBe(false);
    });
});
