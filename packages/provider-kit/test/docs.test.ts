import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kit from '../src';

const CONTRACT = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'provider-contract.md'), 'utf8');
const README = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

/** The names in backticks of the first column of the table under `heading`. */
function tableNames(text: string, heading: string): string[] {
    const at = text.indexOf(heading);
    expect(at).toBeGreaterThanOrEqual(0);
    const rows = text.slice(at).split('\n').slice(1);
    const names: string[] = [];
    let inTable = false;
    for (const row of rows) {
        if (row.startsWith('|')) inTable = true;
        else if (inTable) break;
        else if (row.startsWith('#')) break;
        const first = row.split('|')[1] ?? '';
        for (const m of first.matchAll(/`([A-Za-z]+)(?:\.[A-Za-z]+)?(?:\([^`]*\))?`/g)) names.push(m[1]!);
    }
    return names;
}

describe('the docs name what the kit exports', () => {
    it.each([
        ['docs/provider-contract.md', CONTRACT, '## The Node provider kit'],
        ['packages/provider-kit/README.md', README, '| piece | contract'],
    ])('%s', (_name, text, heading) => {
        const names = tableNames(text, heading);
        expect(names.length).toBeGreaterThan(5);
        const missing = names.filter((n) => !(n in kit));
        expect(missing).toEqual([]);
    });
});
