import {
    canonicalJson,
    signatureMatches,
    signCommand,
    signMessage,
    stringToSign,
} from '../../../shared/contracts/signature';

// The vector published in docs/provider-contract.md: providers in other languages check their code against it.
const key = Buffer.alloc(32, 7);
const envelope = {
    siteId: 'site-paris',
    keyId: 'k1',
    timestamp: '2025-01-15T10:30:00.000Z',
    messageId: 'm-1',
    sessionId: 'vm-1',
};
const body = { version: 1, type: 'X', cycleId: 'c1' };

describe('site signatures', () => {
    it('signs the published test vector', () => {
        expect(canonicalJson(body)).toBe('{"cycleId":"c1","type":"X","version":1}');
        expect(stringToSign(envelope, body)).toBe(
            'HVR-HMAC-SHA256\nsite-paris\nk1\n2025-01-15T10:30:00.000Z\nm-1\nvm-1\n' +
                'dc8625e868af4b721bfa4662255c0135f6a88191adadd32ed20b970911e655ed',
        );
        expect(signMessage(key, envelope, body)).toBe('LYyijv0g0JuUERfLevn6jR1BrS7MufGRrTgZia7Ykvg=');
    });

    it('sorts nested keys by UTF-16 code units and keeps array order and escapes', () => {
        expect(canonicalJson({ b: [3, 1, { z: 1, a: 'é"\n' }], a: null, B: true })).toBe(
            '{"B":true,"a":null,"b":[3,1,{"a":"é\\"\\n","z":1}]}',
        );
    });

    it('verifies regardless of the order the provider wrote its keys in', () => {
        const signature = signMessage(key, envelope, body);
        expect(signatureMatches(key, envelope, { cycleId: 'c1', version: 1, type: 'X' }, signature)).toBe(true);
    });

    it.each([
        ['another site', { ...envelope, siteId: 'site-lyon' }, body],
        ['another session', { ...envelope, sessionId: 'vm-2' }, body],
        ['another message id', { ...envelope, messageId: 'm-2' }, body],
        ['another timestamp', { ...envelope, timestamp: '2025-01-15T10:31:00.000Z' }, body],
        ['a changed body', envelope, { ...body, cycleId: 'c2' }],
    ])('fails for %s', (_what, otherEnvelope, otherBody) => {
        const signature = signMessage(key, envelope, body);
        expect(signatureMatches(key, otherEnvelope, otherBody, signature)).toBe(false);
    });

    it('fails with another key and with a signature that is not even the right length', () => {
        const signature = signMessage(key, envelope, body);
        expect(signatureMatches(Buffer.alloc(32, 8), envelope, body, signature)).toBe(false);
        expect(signatureMatches(key, envelope, body, 'AAAA')).toBe(false);
    });

    it('signCommand produces what the handler verifies', () => {
        const signed = signCommand(
            body,
            { siteId: 'site-paris', keyId: 'k1', key },
            { messageId: 'm-1', sessionId: 'vm-1', signedAt: new Date('2025-01-15T10:30:00Z') },
        );
        expect(signed.applicationProperties.signature).toBe('LYyijv0g0JuUERfLevn6jR1BrS7MufGRrTgZia7Ykvg=');
        expect(JSON.parse(signed.body.toString('utf8'))).toEqual(body);
    });
});
