import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EMBEDDED_ONLY_TEST_FILES, ONE_ENGINE_TESTS } from '../../support/durableEngines';

const root = path.resolve(__dirname, '..', '..', '..');
const doc = readFileSync(path.join(root, 'docs', 'durable-runtime.md'), 'utf8');

function section(marker: string): string {
    const start = doc.indexOf(`<!-- ${marker}:start -->`);
    const end = doc.indexOf(`<!-- ${marker}:end -->`);
    if (start < 0 || end < start) throw new Error(`docs/durable-runtime.md has no ${marker} section`);
    return doc.slice(start, end);
}

/** The names in back quotes that open each list item. */
function listed(text: string): string[] {
    return [...text.matchAll(/^- `([^`]+)`/gm)].map((m) => m[1]!);
}

describe('the one-engine lists in docs/durable-runtime.md', () => {
    it('names exactly the tests of ONE_ENGINE_TESTS, each with its engine and reason', () => {
        const text = section('one-engine-tests');
        expect(listed(text).sort()).toEqual(Object.keys(ONE_ENGINE_TESTS).sort());
        for (const [name, { engine }] of Object.entries(ONE_ENGINE_TESTS)) {
            const rest = text.slice(text.indexOf(name));
            const item = rest.split('\n- ')[0]!.replace(/\s+/g, ' ');
            expect(item).toContain(`${engine} only:`);
        }
    });

    it('names exactly the embedded-only files; every other orchestration test file runs on both engines', () => {
        expect(listed(section('embedded-only-files')).sort()).toEqual([...EMBEDDED_ONLY_TEST_FILES].sort());
        const files = readdirSync(path.join(root, 'test', 'orchestrations'))
            .filter((f) => f.endsWith('.test.ts'))
            .map((f) => `test/orchestrations/${f}`);
        // A file runs on both engines when its tests are declared with describeOnEngines; otherwise it is listed.
        const onBoth = files.filter((f) => readFileSync(path.join(root, f), 'utf8').includes('describeOnEngines('));
        const embeddedOnly = files.filter((f) => !onBoth.includes(f));
        expect(embeddedOnly.sort()).toEqual([...EMBEDDED_ONLY_TEST_FILES].sort());
        for (const f of onBoth) expect(EMBEDDED_ONLY_TEST_FILES).not.toContain(f);
    });
});
