import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { MAX_COMMAND_BYTES, MAX_DIGEST_REQUEST_BASE64 } from '../../../shared/contracts/messages';
import { commandSchemas, eventSchemas, publishedSchemaFiles } from '../../../shared/contracts/schemas';
import { validateCommand, validateEvent } from '../../../shared/contracts/validate';

const docsDir = join(__dirname, '..', '..', '..', 'docs', 'schemas');

function exampleOf(schema: Record<string, unknown>): Record<string, unknown> {
    const examples = schema.examples as Record<string, unknown>[];
    return structuredClone(examples[0]!);
}

describe('published provider schemas', () => {
    it('docs/schemas holds exactly the schemas the code validates with (regenerate with writeSchemas)', () => {
        const published = publishedSchemaFiles();
        const onDisk = readdirSync(docsDir).filter((n) => n.endsWith('.schema.json'));
        expect(onDisk.sort()).toEqual([...published.keys()].sort());
        for (const [name, content] of published) {
            expect({ name, schema: JSON.parse(readFileSync(join(docsDir, name), 'utf8')) }).toEqual({
                name,
                schema: JSON.parse(content),
            });
        }
    });

    it('every published file is a valid draft 2020-12 schema a strict validator compiles on its own', () => {
        for (const name of readdirSync(docsDir).filter((n) => n.endsWith('.schema.json'))) {
            const schema = JSON.parse(readFileSync(join(docsDir, name), 'utf8'));
            expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
            const ajv = new Ajv2020({ strict: true });
            const validate = ajv.compile(schema);
            expect(validate(schema.examples[0])).toBe(true);
        }
    });
});

describe.each(Object.keys(commandSchemas))('command %s', (type) => {
    const schema = commandSchemas[type as keyof typeof commandSchemas];

    it('accepts its published example', () => {
        expect(validateCommand(exampleOf(schema))).toMatchObject({ type, version: 1 });
    });

    it('rejects a field the schema does not know, naming it', () => {
        expect(() => validateCommand({ ...exampleOf(schema), surprise: 1 })).toThrow(/surprise/);
    });

    it('rejects the message without its first required field', () => {
        const required = (schema.required as string[]).filter((f) => f !== 'type' && f !== 'version');
        const body = exampleOf(schema);
        delete body[required[0]!];
        expect(() => validateCommand(body)).toThrow(expect.objectContaining({ code: 'MESSAGE_INVALID' }));
    });

    it('rejects another version with MESSAGE_VERSION', () => {
        expect(() => validateCommand({ ...exampleOf(schema), version: 2 })).toThrow(
            expect.objectContaining({ code: 'MESSAGE_VERSION' }),
        );
    });
});

describe.each(Object.keys(eventSchemas))('event %s', (type) => {
    const schema = eventSchemas[type as keyof typeof eventSchemas];

    it('accepts its published example', () => {
        expect(validateEvent(exampleOf(schema))).toMatchObject({ type, version: 1 });
    });

    it('rejects a field the schema does not know', () => {
        expect(() => validateEvent({ ...exampleOf(schema), surprise: true })).toThrow(/surprise/);
    });
});

describe('field rules', () => {
    const cycle = () => exampleOf(commandSchemas.CycleCompleted);

    it('rejects an unknown type with MESSAGE_UNKNOWN_TYPE', () => {
        expect(() => validateCommand({ type: 'FormatDisk', version: 1 })).toThrow(
            expect.objectContaining({ code: 'MESSAGE_UNKNOWN_TYPE' }),
        );
    });

    it('rejects ids that could escape their blob path', () => {
        for (const vmId of ['../vm', 'vm/1', 'vm.', '', 'a'.repeat(65), 'vm 1']) {
            expect(() => validateCommand({ ...cycle(), vmId })).toThrow(/vmId/);
        }
    });

    it('rejects a capture time that is not a UTC instant', () => {
        expect(() => validateCommand({ ...cycle(), capturedAt: '2025-01-15 10:30' })).toThrow(/capturedAt/);
        expect(() => validateCommand({ ...cycle(), capturedAt: '2025-01-15T10:30:00+01:00' })).toThrow(/capturedAt/);
    });

    it('rejects fractional and out-of-range percents', () => {
        const progress = exampleOf(commandSchemas.InitialReplicationProgress);
        expect(() => validateCommand({ ...progress, disks: { d0: 42.5 } })).toThrow(/disks/);
        expect(() => validateCommand({ ...progress, disks: { d0: 101 } })).toThrow(/disks/);
    });

    it('rejects a log sequence of 0 (chains start at 1)', () => {
        const body = cycle();
        (body.logs as { sequence: number }[])[0]!.sequence = 0;
        expect(() => validateCommand(body)).toThrow(/sequence/);
    });

    it('rejects a body that is not an object', () => {
        expect(() => validateCommand([1])).toThrow(expect.objectContaining({ code: 'MESSAGE_INVALID' }));
    });
});

describe('ResyncDigestRequest', () => {
    const digest = () => exampleOf(commandSchemas.ResyncDigestRequest);
    /** base64 of `length` characters (a multiple of 4) that decodes to bytes of 0xfb. */
    const base64Of = (length: number) => Buffer.alloc((length / 4) * 3, 0xfb).toString('base64');

    it('accepts a request at the cap, and that body with 64-character ids still fits in one command', () => {
        const longest = {
            ...digest(),
            vmId: 'v'.repeat(64),
            resyncId: 'r'.repeat(64),
            diskId: 'd'.repeat(64),
            round: 64,
            request: base64Of(MAX_DIGEST_REQUEST_BASE64),
        };
        expect(validateCommand(longest)).toMatchObject({ type: 'ResyncDigestRequest' });
        expect(Buffer.byteLength(JSON.stringify(longest), 'utf8')).toBeLessThanOrEqual(MAX_COMMAND_BYTES);
    });

    it('rejects a request one group past the cap, naming the field', () => {
        const body = { ...digest(), request: base64Of(MAX_DIGEST_REQUEST_BASE64 + 4) };
        expect(() => validateCommand(body)).toThrow(/request must NOT have more than 258048 characters/);
    });

    it('rejects a request that is not padded standard base64', () => {
        for (const request of ['AQIgEDA', 'AQIg-DAg', 'AQIg_DAg', 'AQ==AQ==', 'AQIgEDAg\n', '']) {
            expect(() => validateCommand({ ...digest(), request })).toThrow(/request/);
        }
        expect(validateCommand({ ...digest(), request: 'AQI=' })).toMatchObject({ request: 'AQI=' });
    });

    it('rejects round 1 (the StartResync manifest) and rounds past 64', () => {
        for (const round of [0, 1, 65, 2.5]) {
            expect(() => validateCommand({ ...digest(), round })).toThrow(/round/);
        }
    });

    it('rejects a disk id that could escape its blob path', () => {
        expect(() => validateCommand({ ...digest(), diskId: '../d0' })).toThrow(/diskId/);
    });
});
