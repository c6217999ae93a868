import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publishedSchemaFiles } from './schemas';

/**
 * Writes docs/schemas/*.json from the schemas the code validates with, removing stale ones.
 * Run from the repository root after changing shared/contracts/schemas.ts:
 * `npm run build && node dist/shared/contracts/writeSchemas.js [directory]`.
 */
export function writeSchemas(directory: string): string[] {
    mkdirSync(directory, { recursive: true });
    const files = publishedSchemaFiles();
    for (const name of readdirSync(directory)) {
        if (name.endsWith('.schema.json') && !files.has(name)) unlinkSync(join(directory, name));
    }
    for (const [name, content] of files) writeFileSync(join(directory, name), content);
    return [...files.keys()];
}

if (require.main === module) {
    const directory = process.argv[2] ?? join('docs', 'schemas');
    for (const name of writeSchemas(directory)) process.stdout.write(`${join(directory, name)}\n`);
}
