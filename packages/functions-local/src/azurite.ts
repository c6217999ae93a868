import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { AZURITE_LOOKUPS } from './azuriteLookups';

/** The well-known development account that Azurite serves. It is public and only ever valid against Azurite. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteEndpoints {
    blobUrl: string;
    queueUrl: string;
    tableUrl: string;
    /** A connection string naming all three endpoints, usable by every SDK. */
    connectionString: string;
}

export interface RunningAzurite extends AzuriteEndpoints {
    pid: number;
    /**
     * `indexed` when azuriteLookups.ts is installed in it; `plain` when its Azurite or LokiJS is not the version
     * that script was checked against, when the script failed, or with HVR_AZURITE_LOOKUPS=plain.
     */
    lookups: 'indexed' | 'plain';
    /**
     * Settles when the child exits, however: `expected` is true after `stop()`. Watch it for the unexpected case,
     * in which every storage call fails from then on and `reason` is the last line Azurite printed.
     */
    exited: Promise<AzuriteExit>;
    stop(): Promise<void>;
}

/** How the Azurite child ended. */
export interface AzuriteExit {
    code: number | null;
    signal: NodeJS.Signals | null;
    expected: boolean;
    reason: string;
}

/** The bytes of Azurite's output kept after it starts, for the reason of an exit nobody asked for. */
const OUTPUT_TAIL_BYTES = 8192;

export interface StartAzuriteOptions {
    /** Keep data in memory (default) or under this folder. */
    location?: string;
    /** Fixed ports; 0 (default) picks free ones. */
    blobPort?: number;
    queuePort?: number;
    tablePort?: number;
    /** How long to wait for it to listen (AZURITE_START_TIMEOUT_MS). */
    startTimeoutMs?: number;
    /** Extent memory limit in MB for the in-memory store. */
    memoryLimitMb?: number;
}

export function azuriteConnectionString(blobUrl: string, queueUrl: string, tableUrl: string): string {
    return (
        `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
        `BlobEndpoint=${blobUrl};QueueEndpoint=${queueUrl};TableEndpoint=${tableUrl};`
    );
}

/**
 * How long Azurite may take to listen. It loads some hundred modules before it prints anything, which took
 * more than 30 s on a 2-core machine at load 14 (`hvr simulate`, one run in seven): the wait is for a hang, not
 * for a slow start.
 */
export const AZURITE_START_TIMEOUT_MS = 180_000;

/**
 * Runs in the Azurite child before Azurite itself: the child's stdin is a pipe whose other end only the parent
 * holds, so it reaches end-of-file when the parent exits for any reason, `kill -9` included (no signal is sent
 * then, and the child would be reparented and live on). Azurite is then asked to stop as on SIGTERM, and the
 * child exits within five seconds whatever happens. Before Azurite has its handler (it sets it after it listens)
 * the child exits at once. `stop()` ends that pipe too, so Azurite ends as a process that exits, not one that is
 * killed: what lets node's exit-time work run (a `--cpu-prof` profile, say).
 */
const PARENT_WATCH = [
    'const stop = () => {',
    '    setTimeout(() => process.exit(0), 5000).unref();',
    "    if (process.listenerCount('SIGTERM') === 0) process.exit(0);",
    "    process.kill(process.pid, 'SIGTERM');",
    '};',
    "process.stdin.on('end', stop);",
    "process.stdin.on('error', stop);",
    'process.stdin.resume();',
].join('\n');

/** The child's script: the watch, the lookups (unless HVR_AZURITE_LOOKUPS=plain), then Azurite. */
function childScript(env: NodeJS.ProcessEnv): string {
    const lookups =
        env.HVR_AZURITE_LOOKUPS === 'plain'
            ? "console.log('HVR lookups plain (HVR_AZURITE_LOOKUPS)');"
            : AZURITE_LOOKUPS;
    return [PARENT_WATCH, lookups, 'require(process.argv[1]);'].join('\n');
}

/**
 * Node's own flags for the Azurite child, from `HVR_AZURITE_NODE_ARGS` (split on spaces), for example
 * `--cpu-prof --cpu-prof-dir=/tmp/azurite-prof` to profile the emulator in a benchmark (the profile is written when
 * Azurite stops). Only flags: anything not starting with `--` is refused, so the variable cannot name a script.
 */
export function azuriteNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
    const args = (env.HVR_AZURITE_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
    const bad = args.find((a) => !a.startsWith('--'));
    if (bad !== undefined) {
        throw new Error(`HVR_AZURITE_NODE_ARGS takes node flags only (each starting with --), not "${bad}".`);
    }
    return args;
}

/** The line of Azurite's output that says why it stopped (its last non-empty one). */
function reasonIn(output: string): string {
    const lines = output
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '');
    return lines[lines.length - 1] ?? 'no output';
}

/**
 * Starts Azurite from node_modules on loopback and resolves once its three services listen.
 * The ports it picked are read from its own startup lines. The child stops by itself when this process
 * ends, however it ends (see PARENT_WATCH).
 */
export async function startAzurite(options: StartAzuriteOptions = {}): Promise<RunningAzurite> {
    const script = require.resolve('azurite/dist/src/azurite.js');
    const args = [
        script,
        '--disableTelemetry',
        '--skipApiVersionCheck',
        // No access log: a line per request cost about 9 % of Azurite's CPU in a merge soak, and nobody reads it.
        '--silent',
        '--blobHost',
        '127.0.0.1',
        '--queueHost',
        '127.0.0.1',
        '--tableHost',
        '127.0.0.1',
        '--blobPort',
        String(options.blobPort ?? 0),
        '--queuePort',
        String(options.queuePort ?? 0),
        '--tablePort',
        String(options.tablePort ?? 0),
    ];
    if (options.location) {
        args.push('--location', options.location);
    } else {
        args.push('--inMemoryPersistence');
        if (options.memoryLimitMb) args.push('--extentMemoryLimit', String(options.memoryLimitMb));
    }
    // `node -e WATCH azurite.js flags...`: process.argv is [node, azurite.js, flags...] as Azurite expects.
    const child = spawn(process.execPath, [...azuriteNodeArgs(), '-e', childScript(process.env), ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
    });
    const urls: Partial<Record<'Blob' | 'Queue' | 'Table', string>> = {};
    let lookups: RunningAzurite['lookups'] = 'plain';
    const timeoutMs = options.startTimeoutMs ?? AZURITE_START_TIMEOUT_MS;
    let output = '';
    const onStartupError = (c: Buffer): void => {
        output += c.toString();
    };
    const ready = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`Azurite did not start within ${timeoutMs} ms (${reasonIn(output)}).`));
        }, timeoutMs);
        const onData = (chunk: Buffer): void => {
            output += chunk.toString();
            for (const m of output.matchAll(/Azurite (Blob|Queue|Table) service is successfully listening at (\S+)/g)) {
                urls[m[1] as 'Blob' | 'Queue' | 'Table'] = m[2]!.replace(/\/$/, '');
            }
            if (/^HVR lookups indexed/m.test(output)) lookups = 'indexed';
            if (urls.Blob && urls.Queue && urls.Table) {
                clearTimeout(timer);
                child.stdout?.off('data', onData);
                resolve();
            }
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onStartupError);
        child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`Azurite exited with code ${code} before it listened: ${reasonIn(output)}`));
        });
    });
    await ready;
    // Keep draining its output so a full pipe never blocks it, and keep its tail: why it stopped, if it does.
    let stopping = false;
    const keepTail = (c: Buffer): void => {
        output = (output + c.toString()).slice(-OUTPUT_TAIL_BYTES);
    };
    output = output.slice(-OUTPUT_TAIL_BYTES);
    child.stderr?.off('data', onStartupError);
    child.stdout?.on('data', keepTail);
    child.stderr?.on('data', keepTail);
    const exited = new Promise<AzuriteExit>((resolve) => {
        const settle = (): void =>
            resolve({ code: child.exitCode, signal: child.signalCode, expected: stopping, reason: reasonIn(output) });
        if (child.exitCode !== null || child.signalCode !== null) settle();
        else child.once('exit', settle);
    });
    const blobUrl = `${urls.Blob}/${AZURITE_ACCOUNT}`;
    const queueUrl = `${urls.Queue}/${AZURITE_ACCOUNT}`;
    const tableUrl = `${urls.Table}/${AZURITE_ACCOUNT}`;
    return {
        pid: child.pid ?? 0,
        lookups,
        blobUrl,
        queueUrl,
        tableUrl,
        connectionString: azuriteConnectionString(blobUrl, queueUrl, tableUrl),
        exited,
        stop: () => {
            stopping = true;
            return stopChild(child);
        },
    };
}

async function stopChild(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 7000);
    await exited;
    clearTimeout(timer);
}
