#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** A sub-command: a module in tools/ that exports `main(argv): Promise<number>` (the exit code). */
interface Command {
    module: string;
    summary: string;
}

const COMMANDS: Record<string, Command> = {
    hrl: { module: 'hrl-cli', summary: 'inspect, apply and make MS-HRL logs (hvr hrl --help)' },
    provider: {
        module: 'provider',
        summary: 'protect a folder of raw disk images as a site, in real time (hvr provider --help)',
    },
    simulate: {
        module: 'simulate',
        summary: 'run a simulated Hyper-V site against the pipeline (hvr simulate --help)',
    },
    start: { module: 'local-host', summary: 'start Azurite and the local Functions host (what `npm start` runs)' },
};

function usage(): string {
    const lines = ['Usage: hvr <command> [options]', '', 'Commands:'];
    for (const [name, cmd] of Object.entries(COMMANDS)) {
        const available = existsSync(join(__dirname, `${cmd.module}.js`));
        lines.push(`  ${name.padEnd(10)} ${cmd.summary}${available ? '' : ' (not in this build)'}`);
    }
    lines.push('', 'Errors are printed as one line on stderr with a non-zero exit code.');
    return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
    const [name, ...rest] = argv;
    if (!name || name === '--help' || name === '-h' || name === 'help') {
        process.stdout.write(usage() + '\n');
        return name ? 0 : 2;
    }
    const cmd = COMMANDS[name];
    if (!cmd || !existsSync(join(__dirname, `${cmd.module}.js`))) {
        process.stderr.write(`hvr: unknown command "${name}"; see hvr --help\n`);
        return 2;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(join(__dirname, cmd.module)) as { main(argv: string[]): Promise<number> };
    return mod.main(rest);
}

if (require.main === module) {
    // A failed command exits at once: nothing it left behind (a timer, a socket) may keep a half-started
    // process running. A command that succeeded ends when its work does.
    run(process.argv.slice(2)).then(
        (code) => {
            if (code !== 0) process.exit(code);
        },
        (err: unknown) => {
            const message = err instanceof Error ? err.message : String(err);
            process.stderr.write(`hvr: ${message.split('\n')[0]}\n`);
            process.exit(1);
        },
    );
}
