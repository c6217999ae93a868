import { InvocationContext } from '@azure/functions';
import { durableLifecycleRaiser, setProviderChannel } from '../../../shared/contracts/channel';
import { functionRegistry } from '../../../packages/functions-local/src';
import '../../../functions/providerCommands';
import { commands, fakeChannel, FakeChannel, signedDelivery } from './fakeChannel';

function invocation(delivery: ReturnType<typeof signedDelivery>): InvocationContext {
    return new InvocationContext({
        functionName: 'providerCommands',
        triggerMetadata: {
            messageId: delivery.messageId,
            sessionId: delivery.sessionId,
            sequenceNumber: Number(delivery.sequenceNumber),
            deliveryCount: 1,
            applicationProperties: delivery.applicationProperties,
        },
    });
}

describe('the providerCommands Service Bus trigger', () => {
    let channel: FakeChannel;
    let restore: () => void;

    beforeEach(() => {
        channel = fakeChannel();
        const { clock, keys, vms, replay, presence, grants, uploads, events, lifecycle } = channel.ports;
        restore = setProviderChannel({ clock, keys, vms, replay, presence, grants, uploads, events, lifecycle });
    });
    afterEach(() => restore());

    it('is registered on the session-enabled provider-commands queue with a durable client input', () => {
        const fn = functionRegistry().get('providerCommands');
        expect(fn.trigger).toMatchObject({
            type: 'serviceBusTrigger',
            connection: 'PROVIDER_BUS',
            queueName: 'provider-commands',
            isSessionsEnabled: true,
        });
        const bindings = Object.values(fn.metadata.bindings);
        expect(bindings).toContainEqual(expect.objectContaining({ type: 'durableClient', direction: 'in' }));
        expect(bindings).toContainEqual(
            expect.objectContaining({ type: 'serviceBus', direction: 'out', queueName: 'provider-commands-rejected' }),
        );
    });

    it('carries out a valid command with the body as the worker parses it (JSON object) and returns (complete)', async () => {
        const delivery = signedDelivery(commands.cycleCompleted());
        const parsed = JSON.parse((delivery.body as Buffer).toString('utf8'));
        const context = invocation(delivery);
        await functionRegistry().get('providerCommands').handler(parsed, context);
        expect(channel.writes[0]).toMatchObject({
            kind: 'raise',
            instanceId: 'monitor:vm-a1',
            eventName: 'CycleUploaded',
        });
        // The cycle report is recorded for the merge's chain-gap rule before it is raised.
        expect(channel.reported).toEqual([
            { vmId: 'vm-a1', cycleId: expect.any(String), logs: expect.arrayContaining([]) },
        ]);
    });

    it('forwards a rejected command with deadLetterReason and description to provider-commands-rejected, changing nothing', async () => {
        const delivery = signedDelivery(commands.grantRequest('vm-b1'));
        const context = invocation(delivery);
        const fn = functionRegistry().get('providerCommands');
        await fn.handler(JSON.parse((delivery.body as Buffer).toString('utf8')), context);
        expect(channel.writes).toEqual([]);
        const [rejectedOutput] = Object.entries(fn.metadata.bindings).find(([, b]) => b.direction === 'out')!;
        const forwarded = context.extraOutputs.get(rejectedOutput);
        expect(forwarded).toMatchObject({
            deadLetterReason: 'MESSAGE_OTHER_SITE',
            deadLetterErrorDescription: 'VM vm-b1 belongs to another site, not site-a.',
            messageId: delivery.messageId,
            sessionId: 'vm-b1',
        });
    });

    it('throws on a transient failure so the host abandons and the broker redelivers', async () => {
        channel.failNext.port = 'raise';
        channel.failNext.error = new Error('connect ECONNREFUSED');
        const delivery = signedDelivery(commands.cycleCompleted());
        await expect(
            functionRegistry().get('providerCommands').handler(delivery.body, invocation(delivery)),
        ).rejects.toMatchObject({ code: 'TRANSIENT', message: 'connect ECONNREFUSED' });
        expect(channel.seen.size).toBe(0);
    });
});

describe('durableLifecycleRaiser', () => {
    it('answers instanceMissing for the durable client 404 and passes other failures on', async () => {
        const missing = durableLifecycleRaiser({
            raiseEvent: async (id: string) => Promise.reject(new Error(`No instance with ID '${id}' found.`)),
        });
        await expect(missing.raise('monitor:vm-1', 'ProviderHeartbeat', {})).resolves.toBe('instanceMissing');
        const broken = durableLifecycleRaiser({ raiseEvent: async () => Promise.reject(new Error('socket hang up')) });
        await expect(broken.raise('monitor:vm-1', 'ProviderHeartbeat', {})).rejects.toThrow('socket hang up');
        const calls: unknown[] = [];
        const ok = durableLifecycleRaiser({ raiseEvent: async (...args: unknown[]) => void calls.push(args) });
        await expect(ok.raise('monitor:vm-1', 'ProviderHeartbeat', { a: 1 })).resolves.toBe('raised');
        expect(calls).toEqual([['monitor:vm-1', 'ProviderHeartbeat', { a: 1 }]]);
    });
});
