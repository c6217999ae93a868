import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { LocalPlatformError } from '../errors';

/** Where the built .NET host lives, relative to the repository root (`dotnet build engines/dtfx -c Release`). */
export const DTFX_HOST_DLL = path.join('engines', 'dtfx', 'bin', 'Release', 'net10.0', 'hvr-dtfx.dll');

/** What the real engine needs on this machine, found or not. */
export interface DtfxPrerequisites {
    dotnet: string;
    hostDll: string;
}

function repositoryRoot(): string {
    // The first folder above this file (sources under ts-jest, or dist/ when built) that holds engines/dtfx.
    let dir = __dirname;
    while (!existsSync(path.join(dir, 'engines', 'dtfx'))) {
        const parent = path.dirname(dir);
        if (parent === dir) throw new LocalPlatformError('INTERNAL', `No engines/dtfx above ${__dirname}`);
        dir = parent;
    }
    return dir;
}

/**
 * Finds `dotnet` (HVR_DOTNET or PATH) and the built host (HVR_DTFX_HOST or the build output), or says which is
 * missing and how to get it. Never falls back to another engine: the caller asked for this one.
 */
export function findDtfxPrerequisites(env: NodeJS.ProcessEnv = process.env): DtfxPrerequisites | { missing: string } {
    const dotnet = env.HVR_DOTNET ?? 'dotnet';
    const probe = spawnSync(dotnet, ['--list-runtimes'], { encoding: 'utf8', timeout: 30_000 });
    if (probe.error || probe.status !== 0) {
        return {
            missing: `dotnet (${dotnet}) cannot be run (${probe.error?.message ?? `exit ${probe.status}`}): install the .NET SDK 10 or set HVR_DOTNET`,
        };
    }
    if (!/Microsoft\.AspNetCore\.App 10\./.test(probe.stdout)) {
        return { missing: `dotnet (${dotnet}) has no Microsoft.AspNetCore.App 10.x runtime: install the .NET SDK 10` };
    }
    const hostDll = env.HVR_DTFX_HOST ?? path.join(repositoryRoot(), DTFX_HOST_DLL);
    if (!existsSync(hostDll)) {
        return {
            missing: `the Durable engine host ${hostDll} is not built: run \`dotnet build engines/dtfx -c Release\` (or set HVR_DTFX_HOST)`,
        };
    }
    return { dotnet, hostDll };
}

/** Same as findDtfxPrerequisites, but throws CONFIG_MISSING naming what is missing. */
export function requireDtfxPrerequisites(env: NodeJS.ProcessEnv = process.env): DtfxPrerequisites {
    const found = findDtfxPrerequisites(env);
    if ('missing' in found) throw new LocalPlatformError('CONFIG_MISSING', `--durable dtfx needs ${found.missing}`);
    return found;
}

export interface DtfxProcessOptions {
    prerequisites: DtfxPrerequisites;
    bridgeUrl: string;
    bridgeToken: string;
    storageConnectionString: string;
    taskHub: string;
    webhookBase: string;
    /** Upper bound of the Azure Storage backend's queue polling back-off (default 30 s there). */
    maxQueuePollingIntervalMs: number;
    activityTimeoutMs: number;
    /** Lines the host writes (its logs); default dropped. */
    log?: (line: string) => void;
    startTimeoutMs?: number;
}

export interface RunningDtfxProcess {
    /** The client payload the extension hands to `[DurableClient] string` (what the Node worker would get). */
    clientJson: Record<string, unknown>;
    child: ChildProcess;
    stop(): Promise<void>;
}

const READY_PREFIX = 'HVR_DTFX_READY ';

/**
 * Lines of the host not worth a log line: the extension's structured event dump (it prints every backend event
 * as `MS_DURABLE_FUNCTION_EVENTS_LOGS {...}`) and the request log of its local RPC endpoint.
 */
function isNoise(line: string): boolean {
    return (
        line.startsWith('MS_DURABLE_FUNCTION_EVENTS_LOGS') ||
        line.includes('Microsoft.AspNetCore.Hosting.Diagnostics') ||
        /^\s+Request (starting|finished) HTTP/.test(line) ||
        line.includes('Distributed Tracing V2 is GA')
    );
}

/** Starts the .NET host and resolves once the extension runs and has handed out its client payload. */
export async function startDtfxProcess(options: DtfxProcessOptions): Promise<RunningDtfxProcess> {
    const { dotnet, hostDll } = options.prerequisites;
    const child = spawn(dotnet, [hostDll], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: {
            ...process.env,
            DOTNET_CLI_TELEMETRY_OPTOUT: '1',
            DOTNET_NOLOGO: '1',
            HVR_DTFX_PARENT_PID: String(process.pid),
            HVR_DTFX_BRIDGE_URL: options.bridgeUrl,
            HVR_DTFX_BRIDGE_TOKEN: options.bridgeToken,
            AzureWebJobsStorage: options.storageConnectionString,
            HVR_DTFX_TASK_HUB: options.taskHub,
            HVR_DTFX_WEBHOOK_BASE: options.webhookBase,
            HVR_DTFX_MAX_POLL_MS: String(options.maxQueuePollingIntervalMs),
            HVR_DTFX_ACTIVITY_TIMEOUT_MIN: String(options.activityTimeoutMs / 60_000),
        },
    });
    const recent: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines = (stream: NodeJS.ReadableStream, onLine: (line: string) => void): void => {
        let pending = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
            pending += chunk;
            let newline: number;
            while ((newline = pending.indexOf('\n')) >= 0) {
                onLine(pending.slice(0, newline).trimEnd());
                pending = pending.slice(newline + 1);
            }
        });
    };
    const remember = (line: string): void => {
        if (isNoise(line) && !process.env.HVR_DTFX_TRACE) return;
        recent.push(line);
        if (recent.length > 40) recent.shift();
        options.log?.(line);
    };
    const ready = new Promise<Record<string, unknown>>((resolve) => {
        lines(child.stdout, (line) => {
            if (line.startsWith(READY_PREFIX))
                resolve(JSON.parse(line.slice(READY_PREFIX.length)) as Record<string, unknown>);
            else remember(line);
        });
        lines(child.stderr, remember);
    });
    const stop = async (): Promise<void> => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.stdin?.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
    };
    const timeoutMs = options.startTimeoutMs ?? 90_000;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
        ready.then((clientJson) => ({ clientJson })),
        exited.then((code) => ({ exit: code })),
        new Promise<{ timeout: true }>((resolve) => {
            timer = setTimeout(() => resolve({ timeout: true }), timeoutMs);
        }),
    ]);
    clearTimeout(timer);
    if ('clientJson' in outcome) return { clientJson: outcome.clientJson, child, stop };
    await stop();
    const why = 'exit' in outcome ? `exited with code ${outcome.exit}` : `did not start within ${timeoutMs} ms`;
    throw new LocalPlatformError(
        'INTERNAL',
        `The Durable engine host ${hostDll} ${why}. Its last lines:\n${recent.join('\n')}`,
    );
}
