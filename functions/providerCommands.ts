import { app, InvocationContext, output } from '@azure/functions';
import * as df from 'durable-functions';
import { ProviderCommandDelivery, handleProviderCommand } from '../shared/contracts/commandHandler';
import { REJECTED_COMMANDS_QUEUE } from '../shared/bus/entities';
import { providerCommandPorts } from '../shared/contracts/channel';
import { PROVIDER_COMMANDS_QUEUE } from '../shared/contracts/messages';
import { HvrError } from '../shared/errors';
import { ports } from '../shared/ports';

/**
 * Where rejected commands go in the Functions host. @azure/functions 4.16 can register `sdkBinding` and
 * `autoCompleteMessages`, but the settlement actions (dead-letter with a reason) come only from the preview
 * package @azure/functions-extensions-servicebus; a queue's real dead-letter sub-queue cannot be sent to. So a
 * rejected command is completed and a copy, with deadLetterReason and deadLetterErrorDescription, goes to
 * REJECTED_COMMANDS_QUEUE through a GA output binding (docs/provider-contract.md, "Dead letters").
 */
export { REJECTED_COMMANDS_QUEUE };

const rejectedCommands = output.serviceBusQueue({ connection: 'PROVIDER_BUS', queueName: REJECTED_COMMANDS_QUEUE });

function recordOf(value: unknown): Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : {};
}

/** What the worker hands over: the body (parsed if JSON) and the broker properties in triggerMetadata. */
export function deliveryFromTrigger(message: unknown, context: InvocationContext): ProviderCommandDelivery {
    const meta = recordOf(context.triggerMetadata);
    const text = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : undefined);
    return {
        body: message,
        messageId: text(meta.messageId),
        sessionId: text(meta.sessionId),
        sequenceNumber: text(meta.sequenceNumber),
        deliveryCount: typeof meta.deliveryCount === 'number' ? meta.deliveryCount : undefined,
        applicationProperties: recordOf(meta.applicationProperties ?? meta.userProperties),
    };
}

/**
 * A thin trigger: the shared handler decides; this settles. Complete = return; abandon = throw (the host
 * abandons, the broker redelivers, past maxDeliveryCount it dead-letters); dead-letter = forward to
 * `provider-commands-rejected` with the reason, then complete.
 */
export async function providerCommands(message: unknown, context: InvocationContext): Promise<void> {
    const delivery = deliveryFromTrigger(message, context);
    const log = {
        info: (text: string, fields?: Record<string, unknown>) => context.log(text, fields ?? {}),
        warn: (text: string, fields?: Record<string, unknown>) => context.warn(text, fields ?? {}),
    };
    const outcome = await handleProviderCommand(
        delivery,
        providerCommandPorts(() => df.getClient(context), log),
    );
    switch (outcome.action) {
        case 'complete':
            return;
        case 'abandon':
            throw new HvrError(outcome.reason, outcome.description, { messageId: delivery.messageId });
        case 'deadLetter':
            context.extraOutputs.set(rejectedCommands, {
                deadLetterReason: outcome.reason,
                deadLetterErrorDescription: outcome.description,
                messageId: delivery.messageId ?? null,
                sessionId: delivery.sessionId ?? null,
                sequenceNumber: delivery.sequenceNumber ?? null,
                applicationProperties: delivery.applicationProperties ?? {},
                // The copy must fit in a message itself: an oversized body is left out.
                ...(outcome.reason === 'MESSAGE_TOO_LARGE'
                    ? { bodyOmitted: true }
                    : { body: Buffer.isBuffer(delivery.body) ? delivery.body.toString('base64') : delivery.body }),
                rejectedAt: ports().clock.now().toISOString(),
            });
            return;
    }
}

app.serviceBusQueue('providerCommands', {
    connection: 'PROVIDER_BUS',
    queueName: PROVIDER_COMMANDS_QUEUE,
    isSessionsEnabled: true,
    extraInputs: [df.input.durableClient()],
    extraOutputs: [rejectedCommands],
    handler: providerCommands,
});
