import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench -- <name> [--option value ...]`: runs one benchmark, which prints progress on stderr and, as its
 * last line on stdout, one JSON object. Options after the name go to that benchmark. Without a name, runs them all
 * in turn.
 */
const BENCHES = ['hrl', 'merge', 'mergeTrigger', 'resync', 'console', 'retention', 'churnScore', 'scale'];

async function main(): Promise<void> {
    const args = process.argv.slice(2);
    const firstOption = args.findIndex((a) => a.startsWith('--'));
    const names = firstOption < 0 ? args : args.slice(0, firstOption);
    const options = firstOption < 0 ? [] : args.slice(firstOption);
    const chosen = names.length > 0 ? names : BENCHES.filter((b) => existsSync(join(__dirname, `${b}.js`)));
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
