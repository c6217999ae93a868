import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MAX_BODY_BYTES } from '../../functions/apiHttp';

const ROOT = resolve(__dirname, '..', '..');
const doc = readFileSync(join(ROOT, 'docs', 'security.md'), 'utf8');

describe('docs/security.md says what the suite shows', () => {
    it('names every file of the suite, and every test file it names exists', () => {
        const suite = readdirSync(__dirname).filter((f) => f.endsWith('.test.ts') && f !== 'docs.test.ts');
        for (const file of suite) expect({ file, named: doc.includes(`\`${file}\``) }).toEqual({ file, named: true });
        for (const [, named] of doc.matchAll(/`((?:test\/[\w/.-]+\/)?[\w.-]+\.test\.ts)`/g)) {
            const path = named!.startsWith('test/') ? join(ROOT, named!) : join(__dirname, named!);
            expect({ named, exists: existsSync(path) }).toEqual({ named, exists: true });
        }
    });

    it('states the management API body limit the code applies', () => {
        expect(MAX_BODY_BYTES).toBe(64 * 1024);
        expect(doc).toContain('64 KiB');
    });
});
