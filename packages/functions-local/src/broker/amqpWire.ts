// rhea is the AMQP 1.0 library @azure/service-bus itself is built on. Named imports: its module object is a
// container instance whose methods live on the prototype.
import { message as amqpMessage } from 'rhea';
import type { Message, Receiver, Sender } from 'rhea';

/**
 * The parts of Service Bus's AMQP dialect the local broker speaks: link filter and annotation names, the batch
 * message format, lock-token delivery tags, .NET ticks for lock expiries, and rhea's untyped corners.
 */

export const SESSION_FILTER = 'com.microsoft:session-filter';
export const LOCKED_UNTIL_PROPERTY = 'com.microsoft:locked-until-utc';
export const DEAD_LETTER_CONDITION = 'com.microsoft:dead-letter';
export const CONDITIONS = {
    notFound: 'amqp:not-found',
    notImplemented: 'amqp:not-implemented',
    notAllowed: 'amqp:not-allowed',
    messageSizeExceeded: 'amqp:link:message-size-exceeded',
    timeout: 'com.microsoft:timeout',
    sessionCannotBeLocked: 'com.microsoft:session-cannot-be-locked',
    sessionLockLost: 'com.microsoft:session-lock-lost',
    messageLockLost: 'com.microsoft:message-lock-lost',
} as const;

/** The SDK's `sendMessages(batch)` sends one AMQP message in this format whose data sections are the messages. */
export const BATCH_FORMAT = 0x80013700;
export const DEAD_LETTER_SUFFIX = '/$deadletterqueue';
const TICKS_AT_UNIX_EPOCH = 621355968000000000n;

export type AmqpMessage = Message & { delivery_count?: number };

/** Link state rhea has at run time but leaves out of its typings. */
interface LinkFrames {
    remote: {
        attach?: { source?: { address?: string; filter?: Record<string, unknown> }; target?: { address?: string } };
    };
    local: {
        attach: {
            properties?: Record<string, unknown>;
            max_message_size?: unknown;
            source?: unknown;
            target?: unknown;
        };
    };
}
export const frames = (link: unknown) => link as LinkFrames;

/**
 * Refuses a link as AMQP says (1.0, 2.6.3): the answering attach carries a null terminus (the source when we would
 * have sent, the target when we would have received), then the detach carries the error. A client that sees a
 * terminus takes the link as open first: the .NET client then reads the session filter of a refused session
 * receiver and fails with a NullReferenceException instead of the error.
 */
export function refuseLink(link: Sender | Receiver, error: { condition: string; description: string }): void {
    const attach = frames(link).local.attach;
    if (link.is_sender()) attach.source = null;
    else attach.target = null;
    link.close(error);
}

// rhea builds outcome states but does not declare these constructors in its typings.
type Outcome = { described(): unknown };
const outcomeBuilders = amqpMessage as unknown as {
    accepted(): Outcome;
    released(): Outcome;
    rejected(fields?: { error?: { condition: string; description: string } }): Outcome;
};
export const OUTCOMES = {
    accepted: () => outcomeBuilders.accepted().described(),
    released: () => outcomeBuilders.released().described(),
    rejected: () => outcomeBuilders.rejected().described(),
    /** A disposition the broker refuses, e.g. a settlement after the lock was lost. */
    refused: (condition: string, description: string) =>
        outcomeBuilders.rejected({ error: { condition, description } }).described(),
};

/** A time as the 8-byte .NET ticks Service Bus puts in `com.microsoft:locked-until-utc`. */
export function ticks(date: Date): Buffer {
    const value = BigInt(date.getTime()) * 10000n + TICKS_AT_UNIX_EPOCH;
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64BE(value);
    return buffer;
}

/** A described filter value (`{ descriptor, value }`) or the plain value. */
export function unwrapFilterValue(value: unknown): unknown {
    if (value && typeof value === 'object' && 'value' in value) return value.value;
    return value;
}

/**
 * The entity path a link names, with any `amqps://host/` or `sb://host/` prefix removed, and the leading `/` the
 * .NET client puts before it (it sends the path of the endpoint URI: `/provider-commands`).
 */
export function addressOf(terminus: unknown): string {
    const address = (terminus as { address?: string } | undefined)?.address ?? '';
    return address
        .replace(/^amqps?:\/\/[^/]+\//i, '')
        .replace(/^sb:\/\/[^/]+\//i, '')
        .replace(/^\/+/, '');
}

/** The messages inside one batch message (raw data sections, each an encoded message). */
export function unbatch(buffer: Buffer): AmqpMessage[] {
    const outer = amqpMessage.decode(buffer) as { body?: { content?: unknown; multiple?: boolean } };
    const content = outer.body?.content;
    const sections = outer.body?.multiple ? (content as Buffer[]) : [content as Buffer];
    return sections.map((section) => amqpMessage.decode(section) as unknown as AmqpMessage);
}

/**
 * A copy of a message for each subscription that takes it, made through the wire encoding so that every section and
 * typed value stays what the sender sent (a structured clone turns a data section into a map, which the .NET
 * client cannot read as a body).
 */
export function copyMessage(message: AmqpMessage): AmqpMessage {
    const copy = amqpMessage.decode(amqpMessage.encode(message)) as unknown as AmqpMessage;
    if (message.delivery_count !== undefined) copy.delivery_count = message.delivery_count;
    return copy;
}

/** A lock token: 16 random bytes, sent as the delivery tag. */
export function lockTokenTag(uuid: string): Buffer {
    return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

/**
 * The lock token a client sends back (renew-lock, update-disposition) for a delivery tag, as 32 hex digits: the
 * SDKs read the tag as a .NET GUID, whose first three fields are little-endian.
 */
export function lockTokenOfTag(tag: Buffer): string {
    const guid = Buffer.concat([
        Buffer.from(tag.subarray(0, 4)).reverse(),
        Buffer.from(tag.subarray(4, 6)).reverse(),
        Buffer.from(tag.subarray(6, 8)).reverse(),
        tag.subarray(8),
    ]);
    return guid.toString('hex');
}
