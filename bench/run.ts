import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench -- <name>`: runs one benchmark, which prints progress on stderr and, as its last line on
 * stdout, one JSON object. Without a name, runs them all in turn.
 */
const BENCHES = [
    'hrl',
    'merge',
    'mergeTrigger',
    'resync',
    'console',
    'retention',
    'churnScore',
    'durableState',
    'cost',
];

async function main(): Promise<void> {
    const names = process.argv.slice(2);
    const chosen = names.length > 0 ? names : BENCHES.filter((b) => existsSync(join(__dirname, `${b}.js`)));
    for (const name of chosen) {
        if (!BENCHES.includes(name) || !existsSync(join(__dirname, `${name}.js`))) {
            process.stderr.write(`bench: unknown benchmark "${name}" (have: ${BENCHES.join(', ')})\n`);
            process.exitCode = 2;
            return;
        }
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const mod = require(join(__dirname, name)) as { bench(): Promise<Record<string, unknown>> };
        const result = await mod.bench();
        process.stdout.write(JSON.stringify(result) + '\n');
    }
}

main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
});
