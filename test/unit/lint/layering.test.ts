import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/**
 * The repository's lint rules on the imports that keep the layers apart, shown failing on a violation: source
 * text linted as if it were the named file, through the project's own eslint.config.mjs (type-aware parsing
 * off, so files that do not exist can be linted). Run in a child process: the config is an ES module.
 */

const ROOT = path.resolve(__dirname, '../../..');

const LINT_TEXTS = `
const { ESLint } = require('eslint');
const tseslint = require('typescript-eslint');
(async () => {
    const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const eslint = new ESLint({ cwd: process.cwd(), overrideConfig: tseslint.configs.disableTypeChecked });
    const out = [];
    for (const c of cases) {
        const [result] = await eslint.lintText(c.code, { filePath: c.file });
        out.push(result.messages.map((m) => ({ rule: m.ruleId, message: m.message })));
    }
    process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
`;

interface Case {
    file: string;
    from: string;
}

function lintImports(cases: Case[]): { rule: string | null; message: string }[][] {
    const input = cases.map((c) => ({
        file: c.file,
        code: `import * as m from '${c.from}';\nexport const used = m;\n`,
    }));
    const out = execFileSync(process.execPath, ['-e', LINT_TEXTS], {
        cwd: ROOT,
        input: JSON.stringify(input),
        encoding: 'utf8',
        timeout: 300_000,
    });
    return JSON.parse(out) as { rule: string | null; message: string }[][];
}

const violations: [string, Case, RegExp][] = [
    [
        'the package reaching into the app (nested file)',
        { file: 'packages/functions-local/src/durable/probe.ts', from: '../../../../shared/errors' },
        /imports nothing from the app/,
    ],
    [
        'the package reaching into the app (top file)',
        { file: 'packages/functions-local/src/probe.ts', from: '../../../shared/ports' },
        /imports nothing from the app/,
    ],
    [
        "the package's tests reaching into the app",
        { file: 'packages/functions-local/test/probe.ts', from: '../../../orchestrations/resync' },
        /imports nothing from the app/,
    ],
    [
        "the app's tools importing the package's internals",
        { file: 'tools/platform/probe.ts', from: '../../packages/functions-local/src/durable/runtime' },
        /through its entry/,
    ],
    [
        "the app's tests importing the package's internals",
        { file: 'test/unit/probe.test.ts', from: '../../packages/functions-local/src/host/invoke' },
        /through its entry/,
    ],
    [
        "the app's benchmarks importing the package's internals",
        { file: 'bench/probe.ts', from: '../packages/functions-local/src/durable/store' },
        /through its entry/,
    ],
    [
        'deployed functions importing the package',
        { file: 'functions/probe.ts', from: '../packages/functions-local/src' },
        /Deployed code never imports the local platform/,
    ],
    [
        'shared code importing the package',
        { file: 'shared/probe.ts', from: '../packages/functions-local/src' },
        /Deployed code never imports the local platform/,
    ],
    [
        'the entry point importing the package',
        { file: 'index.ts', from: './packages/functions-local/src' },
        /Deployed code never imports the local platform/,
    ],
    [
        'an orchestration importing the package',
        { file: 'orchestrations/probe.ts', from: '../packages/functions-local/src' },
        /never import the local platform/,
    ],
    [
        'an orchestration importing the REST pipeline',
        { file: 'orchestrations/probe.ts', from: '@azure/core-rest-pipeline' },
        /SDK calls belong in shared\/ adapters/,
    ],
    [
        'an orchestration importing a storage SDK',
        { file: 'orchestrations/monitor/probe.ts', from: '@azure/storage-blob' },
        /SDK calls belong in shared\/ adapters/,
    ],
    [
        'an orchestration importing the file system',
        { file: 'orchestrations/probe.ts', from: 'node:fs' },
        /Orchestrations do no I\/O/,
    ],
];

const allowed: [string, Case][] = [
    [
        "the app's tools importing the package's entry",
        { file: 'tools/platform/probe.ts', from: '../../packages/functions-local/src' },
    ],
    [
        "the app's tests importing the package's entry",
        { file: 'test/unit/probe.test.ts', from: '../../packages/functions-local/src' },
    ],
    [
        'the package importing its own modules',
        { file: 'packages/functions-local/src/durable/probe.ts', from: '../errors' },
    ],
    [
        "the package's tests importing its sources",
        { file: 'packages/functions-local/test/probe.ts', from: '../src/durable/store' },
    ],
    ['an orchestration importing the Functions types', { file: 'orchestrations/probe.ts', from: '@azure/functions' }],
    ['shared code importing the REST pipeline', { file: 'shared/probe.ts', from: '@azure/core-rest-pipeline' }],
];

describe('lint keeps the layers apart', () => {
    let results: { rule: string | null; message: string }[][];

    beforeAll(() => {
        results = lintImports([...violations.map(([, c]) => c), ...allowed.map(([, c]) => c)]);
    }, 300_000);

    it.each(violations.map(([name, c, why], i) => [name, c, why, i] as const))('fails on %s', (_name, _c, why, i) => {
        const messages = results[i]!;
        expect(messages).toEqual([expect.objectContaining({ rule: 'no-restricted-imports' })]);
        expect(messages[0]!.message).toMatch(why);
    });

    it.each(allowed.map(([name, c], i) => [name, c, violations.length + i] as const))('allows %s', (_name, _c, i) => {
        expect(results[i]).toEqual([]);
    });
});
