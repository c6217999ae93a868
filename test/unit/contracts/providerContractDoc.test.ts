import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
    logBlobName,
    parseLogBlobName,
    QUARANTINE_CONTAINER,
    replicaBlobName,
} from '../../../shared/contracts/blobNames';
import { QUARANTINE_METADATA_KEYS } from '../../../shared/replica/quarantine';
import {
    ID_PATTERN,
    INITIAL_REPLICATION_CYCLE_ID,
    INSTANT_PATTERN,
    LOG_ID_PATTERN,
} from '../../../shared/contracts/ids';
import { commandSchemas, eventSchemas, JsonSchema } from '../../../shared/contracts/schemas';
import {
    CONSISTENCIES,
    DEPRECATED_CONSISTENCY_SPELLINGS,
    LOG_METADATA_KEYS,
} from '../../../shared/contracts/uploadMetadata';
import { LOCAL_REPLICA_CONTAINERS } from '../../../tools/platform/replicaContainers';

/**
 * docs/provider-contract.md is what a provider in another language is written from: every name, pattern and
 * enum it restates must be the value the code owns.
 */

const docs = join(__dirname, '../../../docs');
const contract = readFileSync(join(docs, 'provider-contract.md'), 'utf8');

/** The text of a section, from its heading to the next heading of the same or a higher level. */
function section(markdown: string, heading: string): string {
    const lines = markdown.split('\n');
    const start = lines.findIndex((l) => l.replace(/^#+ /, '') === heading && l.startsWith('#'));
    if (start < 0) throw new Error(`no section "${heading}"`);
    const level = /^#+/.exec(lines[start]!)![0].length;
    const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && /^#+/.exec(l)![0].length <= level);
    return lines.slice(start + 1, end < 0 ? undefined : end).join('\n');
}

/** The body rows of the markdown tables in `text`, as cells (outer pipes dropped, trimmed). */
function tableRows(text: string): string[][] {
    return text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.startsWith('|') && !/^\|[\s-|]+\|$/.test(l))
        .map((l) =>
            l
                .slice(1, -1)
                .split(' | ')
                .map((c) => c.trim()),
        )
        .filter((cells) => !['rule', 'container', 'metadata', 'field'].includes(cells[0]!));
}

/** The `code spans` of a cell. */
function codes(cell: string): string[] {
    return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

describe('docs/provider-contract.md states what the code owns', () => {
    it('names the rules with the owners values', () => {
        const rules = new Map(tableRows(section(contract, 'Names and rules')).map((r) => [r[0]!, r]));
        expect(codes(rules.get('id')![1]!)).toEqual([ID_PATTERN]);
        expect(codes(rules.get('log id')![1]!)).toEqual([LOG_ID_PATTERN]);
        expect(codes(rules.get('instant')![1]!)).toEqual([INSTANT_PATTERN]);
        expect(codes(rules.get('consistency')![1]!)).toEqual([...CONSISTENCIES]);
        expect(codes(rules.get('initial cycle id')![1]!)).toEqual([INITIAL_REPLICATION_CYCLE_ID]);
        // The templates are what the builders make of placeholder parts.
        const [logTemplate] = codes(rules.get('log blob')![1]!);
        const example = {
            siteId: 's',
            vmId: 'v',
            diskId: 'd',
            sequence: 7,
            logId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
        };
        const fill = (template: string) =>
            template
                .replace('{siteId}', example.siteId)
                .replace('{vmId}', example.vmId)
                .replace('{diskId}', example.diskId)
                .replace('{sequence}', String(example.sequence))
                .replace('{logId}', example.logId);
        expect(fill(logTemplate!)).toBe(logBlobName(example));
        expect(parseLogBlobName(fill(logTemplate!))).toEqual(example);
        const [replicaTemplate] = codes(rules.get('replica blob')![1]!);
        expect(fill(replicaTemplate!)).toBe(replicaBlobName(example.vmId, example.diskId));
    });

    it('lists exactly the containers infra and the local host create', () => {
        const listed = tableRows(section(contract, 'Names and rules'))
            .filter((r) => r.length === 2)
            .map((r) => codes(r[0]!)[0]);
        expect(listed.sort()).toEqual([...LOCAL_REPLICA_CONTAINERS].sort());
        const quarantine = tableRows(section(contract, 'Names and rules')).find(
            (r) => r[0] === `\`${QUARANTINE_CONTAINER}\``,
        )!;
        expect(codes(quarantine[1]!)).toEqual(Object.values(QUARANTINE_METADATA_KEYS));
    });

    it('describes initial replication with the cycle id and metadata name the merge and enable protection use', () => {
        const steps = section(contract, 'Initial replication, step by step');
        expect(steps).toContain(`\`cycleid\` = \`${INITIAL_REPLICATION_CYCLE_ID}\``);
        expect(LOG_METADATA_KEYS.cycleId).toBe('cycleid');
        expect(steps).toMatch(/does \*\*not\*\* send `CycleCompleted` for initial replication/);
    });

    it('lists the upload metadata names, the consistency values and the deprecated spellings', () => {
        const flow = section(contract, 'The upload flow');
        const rows = tableRows(flow);
        expect(rows.map((r) => codes(r[0]!)[0]).sort()).toEqual(Object.values(LOG_METADATA_KEYS).sort());
        const consistency = rows.find((r) => r[0] === `\`${LOG_METADATA_KEYS.consistency}\``)!;
        expect(codes(consistency[1]!)).toEqual([...CONSISTENCIES]);
        expect(codes(consistency[2]!)).toEqual([CONSISTENCIES[0]]);
        const deprecated = /\*\*Deprecated:\*\*([\s\S]*?)\n\n/.exec(flow)![1]!;
        for (const [old, meant] of Object.entries(DEPRECATED_CONSISTENCY_SPELLINGS)) {
            expect(deprecated).toContain(`\`${old}\``);
            expect(deprecated).toContain(`\`${meant}\``);
        }
        // The merge's page says the same.
        const merge = readFileSync(join(docs, 'merge.md'), 'utf8');
        const mergeRow = tableRows(merge).find((r) => r[0] === `\`${LOG_METADATA_KEYS.consistency}\``)!;
        expect(codes(mergeRow[1]!).slice(0, 2)).toEqual([...CONSISTENCIES]);
    });

    interface Field {
        name: string;
        required: boolean;
        schema: Record<string, unknown>;
    }

    function fieldsOf(schema: JsonSchema, prefix = ''): Field[] {
        const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
        const required = new Set((schema.required ?? []) as string[]);
        return Object.entries(properties).flatMap(([key, value]) => {
            const name = `${prefix}${key}`;
            const own: Field = { name, required: required.has(key), schema: value };
            const items = value.items as JsonSchema | undefined;
            if (value.type === 'array' && items?.properties) return [own, ...fieldsOf(items, `${name}[].`)];
            if (value.type === 'object' && value.properties) return [own, ...fieldsOf(value, `${name}.`)];
            return [own];
        });
    }

    /** What the type column must say for a field, from its schema. */
    function expectTypeCell(cell: string, field: Field): void {
        const s = field.schema;
        const items = s.items as Record<string, unknown> | undefined;
        if (s.const !== undefined) expect(codes(cell)).toEqual([JSON.stringify(s.const)]);
        if (Array.isArray(s.enum)) expect(codes(cell)).toEqual(s.enum.map((v) => JSON.stringify(v)));
        if (Array.isArray(items?.enum)) expect(codes(cell)).toEqual(items.enum.map((v) => JSON.stringify(v)));
        if (s.pattern === ID_PATTERN) expect(cell).toMatch(/^id\b/);
        if (s.pattern === LOG_ID_PATTERN) expect(cell).toMatch(/^log id\b/);
        if (s.pattern === INSTANT_PATTERN) expect(cell).toMatch(/^UTC instant\b/);
        if (items?.pattern === ID_PATTERN) expect(cell).toMatch(/^array of id\b/);
        const names = s.propertyNames as Record<string, unknown> | undefined;
        if (names?.pattern === ID_PATTERN) expect(cell).toMatch(/^map id → /);
    }

    it.each([
        ...Object.entries(commandSchemas).map(([type, schema]) => ['command', type, schema] as const),
        ...Object.entries(eventSchemas).map(([type, schema]) => ['event', type, schema] as const),
    ])('documents every field of %s %s, required as the schema says, with its enum and rule', (_kind, type, schema) => {
        const text = section(contract, type);
        expect(text).toContain(`schemas/${_kind}.${type}.v1.schema.json`);
        const rows = tableRows(text).filter((r) => r.length === 3);
        const documented = rows.map((r) => ({ name: codes(r[0]!)[0], required: r[2] === 'yes' }));
        const fields = fieldsOf(schema);
        expect(documented).toEqual(fields.map((f) => ({ name: f.name, required: f.required })));
        for (const [i, field] of fields.entries()) {
            try {
                expectTypeCell(rows[i]![1]!, field);
            } catch (err) {
                throw new Error(
                    `${type}.${field.name}: type cell "${rows[i]![1]}" does not match its schema\n${String(err)}`,
                );
            }
        }
    });
});

describe('the other pages that restate the contract', () => {
    it('do not claim StartReplication carries the off-hours window', () => {
        const lifecycle = readFileSync(join(docs, 'lifecycle.md'), 'utf8');
        expect(lifecycle).not.toMatch(/StartReplication` \([^)]*off-hours window/);
        expect(Object.keys(eventSchemas.StartReplication.properties as object)).not.toContain('offHoursWindow');
    });

    it('docs/local-host.md lists the containers the local host creates', () => {
        const localHost = readFileSync(join(docs, 'local-host.md'), 'utf8');
        const paragraph = /Before any function runs it creates the blob containers([\s\S]*?)\n\n/.exec(localHost)![1]!;
        expect(codes(paragraph).filter((c) => c !== 'REPLICA_STORAGE')).toEqual([...LOCAL_REPLICA_CONTAINERS]);
    });

    it('say the sites API returns the site key', () => {
        const simulator = readFileSync(join(docs, 'simulator.md'), 'utf8');
        expect(simulator).not.toMatch(/Until the sites API returns it/);
        expect(simulator).toMatch(/answer carries the site key \(`siteKey`/);
    });
});
