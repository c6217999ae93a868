import { types as amqpTypes } from 'rhea';
import type { Message } from 'rhea';

/**
 * The `$management` operations of an entity that the SDK's receivers use: renew a message lock, renew a
 * session lock, settle by lock token (`update-disposition`, used when a message is settled after its receiver
 * link was replaced) and peek (`peek-message`: browse without locking, from a sequence number on). Each answer
 * carries `statusCode` the way Service Bus does; anything else is 501 with the operation named.
 * Types as Service Bus sends them, since the .NET client casts what it reads: status codes are ints, error
 * conditions symbols, lock expiries an array of timestamps.
 */

export interface ManagementTarget {
    /** New lock expiry per token, or undefined for a token that holds no lock (expired, settled, unknown). */
    renewMessageLock(entityPath: string, lockToken: string): Date | undefined;
    renewSessionLock(entityPath: string, sessionId: string): Date | undefined;
    settleByLockToken(
        entityPath: string,
        lockToken: string,
        outcome: 'complete' | 'abandon' | 'deadLetter',
        deadLetter: { reason?: string; description?: string },
    ): boolean;
    /** Up to `count` messages from `fromSequence` on, in sequence order, locked ones included; encoded as delivered. */
    peek(entityPath: string, fromSequence: number, count: number, sessionId?: string): Buffer[];
}

export interface ManagementAnswer {
    application_properties: Record<string, unknown>;
    body?: unknown;
}

/** Status codes are AMQP ints: the .NET client will not read them as the unsigned type a bare number becomes. */
const code = (value: number): unknown => amqpTypes.wrap_int(value);

const condition = (value: string): unknown => amqpTypes.wrap_symbol(value);
const TIMESTAMP_TYPECODE = 0x83;

const LOCK_LOST = { statusCode: code(410), errorCondition: condition('com.microsoft:message-lock-lost') };
const SESSION_LOCK_LOST = { statusCode: code(410), errorCondition: condition('com.microsoft:session-lock-lost') };

/** A lock token as the SDK sends it: a uuid (16 bytes) or its string form. Returned as 32 hex digits. */
export function lockTokenHex(token: unknown): string {
    if (Buffer.isBuffer(token)) return token.toString('hex');
    if (token instanceof Uint8Array) return Buffer.from(token).toString('hex');
    return String(token).replace(/-/g, '').toLowerCase();
}

function bodyOf(request: Message): Record<string, unknown> {
    const body = request.body as unknown;
    return body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
}

function text(value: unknown): string {
    return typeof value === 'string' ? value : '';
}

function tokensOf(request: Message): string[] {
    const tokens = bodyOf(request)['lock-tokens'];
    return Array.isArray(tokens) ? tokens.map(lockTokenHex) : [];
}

export function answerManagement(target: ManagementTarget, entityPath: string, request: Message): ManagementAnswer {
    const operation = String(request.application_properties?.operation ?? '');
    switch (operation) {
        case 'com.microsoft:renew-lock': {
            const expirations = tokensOf(request).map((token) => target.renewMessageLock(entityPath, token));
            if (expirations.some((e) => e === undefined)) {
                return {
                    application_properties: {
                        ...LOCK_LOST,
                        statusDescription: 'The lock supplied is invalid: it expired, or the message was settled.',
                    },
                };
            }
            const times = (expirations as Date[]).map((e) => e.getTime());
            return {
                application_properties: { statusCode: code(200) },
                body: { expirations: amqpTypes.wrap_array(times, TIMESTAMP_TYPECODE, undefined) },
            };
        }
        case 'com.microsoft:renew-session-lock': {
            const sessionId = text(bodyOf(request)['session-id']);
            const expiration = target.renewSessionLock(entityPath, sessionId);
            if (!expiration) {
                return {
                    application_properties: {
                        ...SESSION_LOCK_LOST,
                        statusDescription: `The session lock of ${sessionId} has expired or was released.`,
                    },
                };
            }
            return { application_properties: { statusCode: code(200) }, body: { expiration } };
        }
        case 'com.microsoft:peek-message': {
            const body = bodyOf(request);
            const sessionId = typeof body['session-id'] === 'string' ? body['session-id'] : undefined;
            const messages = target.peek(
                entityPath,
                Number(body['from-sequence-number'] ?? 0),
                Number(body['message-count'] ?? 1),
                sessionId,
            );
            // 204: nothing at or after that sequence number, as Service Bus answers an empty peek.
            if (messages.length === 0) return { application_properties: { statusCode: code(204) } };
            return {
                application_properties: { statusCode: code(200) },
                body: { messages: messages.map((message) => ({ message })) },
            };
        }
        case 'com.microsoft:update-disposition': {
            const body = bodyOf(request);
            const status = text(body['disposition-status']);
            const outcome =
                status === 'completed'
                    ? 'complete'
                    : status === 'abandoned'
                      ? 'abandon'
                      : status === 'suspended'
                        ? 'deadLetter'
                        : undefined;
            if (!outcome) break;
            const deadLetter = {
                reason: typeof body['deadletter-reason'] === 'string' ? body['deadletter-reason'] : undefined,
                description:
                    typeof body['deadletter-description'] === 'string' ? body['deadletter-description'] : undefined,
            };
            const settled = tokensOf(request).every((token) =>
                target.settleByLockToken(entityPath, token, outcome, deadLetter),
            );
            if (!settled) {
                return {
                    application_properties: { ...LOCK_LOST, statusDescription: 'The lock supplied is invalid.' },
                };
            }
            return { application_properties: { statusCode: code(200) } };
        }
    }
    return {
        application_properties: {
            statusCode: code(501),
            statusDescription: `${operation} is not implemented by the local broker (${entityPath}).`,
            errorCondition: condition('amqp:not-implemented'),
        },
    };
}
