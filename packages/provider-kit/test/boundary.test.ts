import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const SRC = join(__dirname, '..', 'src');

describe('the kit and the core', () => {
    it('reaches the core only through src/core.ts, and never the app (functions, orchestrations, tools)', () => {
        const outside: string[] = [];
        for (const file of readdirSync(SRC).filter((f) => f.endsWith('.ts'))) {
            const text = readFileSync(join(SRC, file), 'utf8');
            for (const m of text.matchAll(/from '([^']+)'/g)) {
                const target = m[1]!;
                if (!target.startsWith('.')) continue;
                if (target.startsWith('../')) {
                    if (file !== 'core.ts') outside.push(`${file} → ${target}`);
                    else if (!target.startsWith('../../../shared/')) outside.push(`${file} → ${target}`);
                }
            }
        }
        expect(outside).toEqual([]);
    });
});
