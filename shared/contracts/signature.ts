import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HvrError } from '../errors';

/**
 * How a provider proves which site sent a message: HMAC-SHA256 with the site's key over a canonical string of
 * the envelope and the body. docs/provider-contract.md walks through it for implementers in other languages.
 */
export const SIGNATURE_SCHEME = 'HVR-HMAC-SHA256';

/** Application properties that carry the proof on every command. */
export interface SignedEnvelope {
    siteId: string;
    keyId: string;
    /** ISO 8601 UTC instant at which the provider signed the message. */
    timestamp: string;
    messageId: string;
    sessionId: string;
}

/** Site keys are 32 random bytes, exchanged as base64. */
export const SITE_KEY_BYTES = 32;

export function newSiteKey(): Buffer {
    return randomBytes(SITE_KEY_BYTES);
}

/**
 * RFC 8785 (JCS) serialization for the JSON our schemas allow: object keys sorted by UTF-16 code units, no
 * whitespace, strings as JSON.stringify writes them, numbers as ECMAScript prints them.
 */
export function canonicalJson(value: unknown): string {
    if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
    if (typeof value === 'number') {
        if (!Number.isFinite(value)) throw new HvrError('MESSAGE_INVALID', `Non-finite number ${value} in message.`);
        return JSON.stringify(value);
    }
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
    if (typeof value === 'object') {
        const entries = Object.entries(value as Record<string, unknown>)
            .filter(([, v]) => v !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    throw new HvrError('MESSAGE_INVALID', `Value of type ${typeof value} cannot appear in a JSON message.`);
}

/** The exact string that is signed: seven lines joined by "\n", no trailing newline. */
export function stringToSign(envelope: SignedEnvelope, body: unknown): string {
    const bodyHash = createHash('sha256').update(canonicalJson(body), 'utf8').digest('hex');
    return [
        SIGNATURE_SCHEME,
        envelope.siteId,
        envelope.keyId,
        envelope.timestamp,
        envelope.messageId,
        envelope.sessionId,
        bodyHash,
    ].join('\n');
}

/** base64(HMAC-SHA256(key, stringToSign)). What providers put in the `signature` property. */
export function signMessage(key: Uint8Array, envelope: SignedEnvelope, body: unknown): string {
    return createHmac('sha256', key).update(stringToSign(envelope, body), 'utf8').digest('base64');
}

/** Constant-time check of a presented signature. */
export function signatureMatches(key: Uint8Array, envelope: SignedEnvelope, body: unknown, presented: string): boolean {
    const expected = Buffer.from(signMessage(key, envelope, body), 'base64');
    const given = Buffer.from(presented, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A command ready to send: what a provider puts on the wire. */
export interface SignedCommand {
    /** UTF-8 JSON of the command. */
    body: Buffer;
    messageId: string;
    sessionId: string;
    contentType: 'application/json';
    applicationProperties: { siteId: string; keyId: string; timestamp: string; signature: string };
}

/**
 * Signs a command the way a provider must (used by the provider simulator and the tests).
 * `sessionId` is the VM id for VM-scoped commands and `site:{siteId}` otherwise.
 */
export function signCommand(
    command: object,
    signer: { siteId: string; keyId: string; key: Uint8Array },
    message: { messageId: string; sessionId: string; signedAt: Date },
): SignedCommand {
    const envelope: SignedEnvelope = {
        siteId: signer.siteId,
        keyId: signer.keyId,
        timestamp: message.signedAt.toISOString(),
        messageId: message.messageId,
        sessionId: message.sessionId,
    };
    return {
        body: Buffer.from(JSON.stringify(command), 'utf8'),
        messageId: message.messageId,
        sessionId: message.sessionId,
        contentType: 'application/json',
        applicationProperties: {
            siteId: envelope.siteId,
            keyId: envelope.keyId,
            timestamp: envelope.timestamp,
            signature: signMessage(signer.key, envelope, command),
        },
    };
}
