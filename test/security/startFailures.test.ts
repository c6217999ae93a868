import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ts from 'typescript';
import { main } from '../../tools/local-host';

const ROOT = resolve(__dirname, '..', '..');

/** Azurite processes whose parent is this process (the suite's own shared Azurite may be one of them). */
function azuriteChildren(): Set<number> {
    const found = new Set<number>();
    for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
            if (ppid === process.pid && cmdline.includes('azurite')) found.add(Number(entry));
        } catch {
            // The process ended while we looked.
        }
    }
    return found;
}

/** Alive means running or sleeping: a zombie nobody reaped has ended all the same. */
function alive(pid: number): boolean {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
    } catch {
        return false;
    }
}

function listenOn(port: number): Promise<Server> {
    return new Promise((done, fail) => {
        const server = createServer();
        server.once('error', fail);
        server.listen(port, '127.0.0.1', () => done(server));
    });
}

async function freePort(): Promise<number> {
    const server = await listenOn(0);
    const { port } = server.address() as { port: number };
    await new Promise((r) => server.close(r));
    return port;
}

/** Runs `hvr start` in this process and returns its exit code and what it wrote to stderr. */
async function start(argv: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
    const stderr: string[] = [];
    const stdout: string[] = [];
    const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
    const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (stdout.push(String(chunk)), true));
    try {
        const code = await main(argv);
        return { code, stderr: stderr.join(''), stdout: stdout.join('') };
    } finally {
        err.mockRestore();
        out.mockRestore();
    }
}

describe('hvr start exits non-zero with one line when it cannot start, and leaves nothing running', () => {
    let app: string;
    const env = { ...process.env };
    beforeEach(() => {
        // An app with nothing in it: what is checked here comes before any function runs.
        app = mkdtempSync(join(tmpdir(), 'hvr-start-'));
        writeFileSync(join(app, 'package.json'), JSON.stringify({ main: 'app.js' }));
        writeFileSync(join(app, 'app.js'), '');
        delete process.env.AzureWebJobsStorage;
        delete process.env.AZURE_STORAGE_CONNECTION_STRING;
    });
    afterEach(() => {
        rmSync(app, { recursive: true, force: true });
        process.env = { ...env };
    });

    it('storage unreachable with --no-azurite: one line naming the service, the port not held', async () => {
        const storagePort = await freePort();
        const port = await freePort();
        process.env.AzureWebJobsStorage =
            'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;' +
            `BlobEndpoint=http://127.0.0.1:${storagePort}/devstoreaccount1;` +
            `QueueEndpoint=http://127.0.0.1:${storagePort}/devstoreaccount1;` +
            `TableEndpoint=http://127.0.0.1:${storagePort}/devstoreaccount1;`;
        const started = Date.now();
        const { code, stderr, stdout } = await start(['--app', app, '--no-azurite', '--port', String(port)]);
        expect(code).toBe(1);
        expect(stderr).toBe(
            `hvr start: cannot start: AzureWebJobsStorage's blob service at http://127.0.0.1:${storagePort}/devstoreaccount1 ` +
                'does not answer (ECONNREFUSED): start that storage, or run without --no-azurite to use the embedded Azurite.\n',
        );
        expect(stdout).toBe('');
        expect(Date.now() - started).toBeLessThan(15_000);
        (await listenOn(port)).close();
    });

    it('port taken: one line naming the port, and the embedded Azurite it started is stopped', async () => {
        const before = azuriteChildren();
        const taken = await listenOn(0);
        const port = (taken.address() as { port: number }).port;
        try {
            const { code, stderr } = await start(['--app', app, '--port', String(port)]);
            expect(code).toBe(1);
            expect(stderr).toBe(
                `hvr start: cannot start: Port ${port} on 127.0.0.1 is already in use (another hvr start or func start?): ` +
                    'stop it or pass --port.\n',
            );
            const left = [...azuriteChildren()].filter((pid) => !before.has(pid) && alive(pid));
            expect(left).toEqual([]);
        } finally {
            taken.close();
        }
    });

    it('settings missing: one line naming the setting', async () => {
        const { code, stderr } = await start(['--app', app, '--no-azurite', '--port', '0']);
        expect(code).toBe(1);
        expect(stderr).toMatch(/^hvr start: cannot start: --no-azurite needs AzureWebJobsStorage .*\n$/);
        expect(stderr.split('\n')).toHaveLength(2);
    });

    it('a bad option: one line, exit code 1', async () => {
        const { code, stderr } = await start(['--port', 'seventy']);
        expect(code).toBe(1);
        expect(stderr).toBe('hvr start: cannot start: --port needs a whole number up to 65535, got "seventy".\n');
    });
});

describe('the embedded Azurite dies with its host', () => {
    let dir: string;
    let host: ChildProcess | undefined;
    beforeAll(() => {
        // The package's azurite.ts imports only Node's own modules and its lookups script: transpiled, the two run in
        // a plain Node child.
        dir = mkdtempSync(join(tmpdir(), 'hvr-azurite-parent-'));
        const lookups = readFileSync(join(ROOT, 'packages', 'functions-local', 'src', 'azuriteLookups.ts'), 'utf8');
        writeFileSync(
            join(dir, 'azuriteLookups.js'),
            ts.transpileModule(lookups, {
                compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
            }).outputText,
        );
        const source = readFileSync(join(ROOT, 'packages', 'functions-local', 'src', 'azurite.ts'), 'utf8').replace(
            "require.resolve('azurite/dist/src/azurite.js')",
            JSON.stringify(require.resolve('azurite/dist/src/azurite.js')),
        );
        const { outputText } = ts.transpileModule(source, {
            compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
        });
        writeFileSync(join(dir, 'azurite.js'), outputText);
        writeFileSync(
            join(dir, 'host.js'),
            "require('./azurite.js').startAzurite().then((a) => { console.log('AZURITE ' + a.pid); setInterval(() => {}, 1000); });",
        );
    });
    afterAll(() => {
        host?.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
    });

    it('ends within seconds when the host is killed with SIGKILL (no signal reaches the child)', async () => {
        host = spawn(process.execPath, [join(dir, 'host.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
        const azuritePid = await new Promise<number>((done, fail) => {
            let output = '';
            host!.stdout!.on('data', (chunk: Buffer) => {
                output += chunk.toString();
                const m = /AZURITE (\d+)/.exec(output);
                if (m) done(Number(m[1]));
            });
            host!.once('exit', (code) => fail(new Error(`host exited (${code}) before Azurite started: ${output}`)));
        });
        expect(alive(azuritePid)).toBe(true);
        host.kill('SIGKILL');
        const deadline = Date.now() + 10_000;
        while (alive(azuritePid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        const survived = alive(azuritePid);
        if (survived) process.kill(azuritePid, 'SIGKILL');
        expect(survived).toBe(false);
    });
});
