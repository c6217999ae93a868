import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench -- <name>`: runs one benchmark, which prints progress on stderr and, as its last line on
 * stdout, one JSON object. Without a name, runs them all in turn (but `soak`, `cost` and `scale`, which run for minutes). Options
 * after a name (`npm run bench -- soak --vms 2`) go to that benchmark.
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
    'soak',
    'cost',
    'scale',
];

/** Left out when no name is given: they run for minutes and take options. */
const LONG_RUNNING = new Set(['soak', 'cost', 'scale']);

async function main(): Promise<void> {
    const args = process.argv.slice(2);
    const firstOption = args.findIndex((a) => a.startsWith('--'));
    const names = firstOption < 0 ? args : args.slice(0, firstOption);
    const options = firstOption < 0 ? [] : args.slice(firstOption);
    if (options.length > 0 && names.length !== 1) {
        process.stderr.write('bench: options go after exactly one benchmark name (npm run bench -- soak --vms 2)\n');
        process.exitCode = 2;
        return;
    }
    const chosen =
        names.length > 0
            ? names
            : BENCHES.filter((b) => !LONG_RUNNING.has(b) && existsSync(join(__dirname, `${b}.js`)));
    for (const name of chosen) {
        if (!BENCHES.includes(name) || !existsSync(join(__dirname, `${name}.js`))) {
            process.stderr.write(`bench: unknown benchmark "${name}" (have: ${BENCHES.join(', ')})\n`);
            process.exitCode = 2;
            return;
        }
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const mod = require(join(__dirname, name)) as { bench(argv: string[]): Promise<Record<string, unknown>> };
        const result = await mod.bench(options);
        process.stdout.write(JSON.stringify(result) + '\n');
    }
}

main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
});
