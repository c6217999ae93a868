import { resolve } from 'node:path';
import { consoleLine } from '../shared/consoleRoute';
import { ensureErrorType, HvrError } from '../shared/errors';
import { parseDurableEngine, localSettingsValues } from '../packages/functions-local/src';
import { LocalHost, LocalHostOptions, startLocalHost } from './platform';

const USAGE = `Usage: hvr start [options]   (npm start builds, then runs this)

Starts Azurite and the local Functions host: the app's HTTP functions on /api, blob triggers from a
container scan, timers, the provider channel on a local Service Bus broker (unless PROVIDER_BUS names a
namespace), orchestrations on the durable runtime.

Options:
  --port N                 HTTP port (default 7071; 0 picks a free one)
  --host ADDR              interface to listen on (default 127.0.0.1)
  --app DIR                folder of the app's package.json, host.json, local.settings.json (default .)
  --azurite-location DIR   keep Azurite's data in DIR (default: in memory); also --location
  --azurite-port N         Azurite on ports N, N+1, N+2 for blob, queue, table (default: free ports)
  --no-azurite             use AzureWebJobsStorage (environment or local.settings.json) instead
  --key KEY                the function key (default: HVR_FUNCTION_KEY, else random)
  --master-key KEY         the master key: every route and the durable webhooks (default: HVR_MASTER_KEY, else random)
  --durable-key KEY        the durabletask_extension system key for /runtime/webhooks/durabletask/*
                           (default: HVR_DURABLE_KEY, else random)
  --blob-scan-interval MS  time between blob container scans (default 2000)
  --blob-content-limit B   largest blob passed to a trigger as content (default 33554432)
  --drain-timeout MS       how long Ctrl-C waits for running invocations (default 30000)
  --bus-port N             the local Service Bus broker's AMQP port on 127.0.0.1 (default: a free port)
  --durable ENGINE         embedded (default; or HVR_DURABLE) or dtfx: the real Durable Functions extension
                           on Azurite, built from engines/dtfx (docs/durable-runtime.md)
  --durable-state WHERE    storage (default): the embedded runtime keeps its instances in Azure Storage
                           (Azurite), so a restart on the same data resumes running jobs; memory: lost on stop
  --if-owned WAIT|EXIT     another host owns the task hub's durable state: wait for its lease (default) or exit 1
  -h, --help               this text`;

interface StartArgs {
    options: LocalHostOptions;
    noAzurite: boolean;
    help: boolean;
}

function wholeNumber(flag: string, value: string | undefined, max = Number.MAX_SAFE_INTEGER): number {
    if (value === undefined || !/^\d+$/.test(value) || Number(value) > max) {
        throw new HvrError('VALIDATION_FAILED', `${flag} needs a whole number up to ${max}, got "${value ?? ''}".`);
    }
    return Number(value);
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
    const found = allowed.find((a) => a === value.toLowerCase());
    if (!found) throw new HvrError('VALIDATION_FAILED', `${flag} is one of ${allowed.join(', ')}; got "${value}".`);
    return found;
}

/** Reads `hvr start`'s arguments. */
export function parseStartArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): StartArgs {
    const options: LocalHostOptions = {
        port: 7071,
        functionKey: env.HVR_FUNCTION_KEY || undefined,
        durableState: 'storage',
    };
    if (env.HVR_MASTER_KEY) options.masterKey = env.HVR_MASTER_KEY;
    if (env.HVR_DURABLE_KEY) options.durableExtensionKey = env.HVR_DURABLE_KEY;
    let noAzurite = false;
    let help = false;
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!;
        const [flag, inline] =
            arg.startsWith('--') && arg.includes('=')
                ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
                : [arg, undefined];
        const value = (): string => {
            const v = inline ?? argv[++i];
            if (v === undefined || v === '') throw new HvrError('VALIDATION_FAILED', `${flag} needs a value.`);
            return v;
        };
        switch (flag) {
            case '-h':
            case '--help':
                help = true;
                break;
            case '--port':
                options.port = wholeNumber(flag, value(), 65535);
                break;
            case '--host':
                options.hostname = value();
                break;
            case '--app':
                options.appRoot = resolve(value());
                break;
            case '--location':
            case '--azurite-location':
                options.azurite = { ...options.azurite, location: resolve(value()) };
                break;
            case '--azurite-port': {
                const port = wholeNumber(flag, value(), 65533);
                options.azurite = { ...options.azurite, blobPort: port, queuePort: port + 1, tablePort: port + 2 };
                break;
            }
            case '--no-azurite':
                noAzurite = true;
                break;
            case '--key':
                options.functionKey = value();
                break;
            case '--master-key':
                options.masterKey = value();
                break;
            case '--durable-key':
                options.durableExtensionKey = value();
                break;
            case '--blob-scan-interval':
                options.blobScanIntervalMs = wholeNumber(flag, value());
                break;
            case '--blob-content-limit':
                options.blobTrigger = { ...options.blobTrigger, contentLimitBytes: wholeNumber(flag, value()) };
                break;
            case '--drain-timeout':
                options.drainTimeoutMs = wholeNumber(flag, value());
                break;
            case '--bus-port':
                options.serviceBus = { ...options.serviceBus, brokerPort: wholeNumber(flag, value(), 65535) };
                break;
            case '--durable':
                options.durable = parseDurableEngine(value(), '--durable');
                break;
            case '--durable-state':
                options.durableState = oneOf(flag, value(), ['storage', 'memory'] as const);
                break;
            case '--if-owned':
                options.ifTaskHubOwned = oneOf(flag, value(), ['wait', 'exit'] as const);
                break;
            default:
                throw new HvrError('VALIDATION_FAILED', `Unknown option "${arg}"; see hvr start --help.`);
        }
    }
    if (noAzurite && options.azurite) {
        throw new HvrError(
            'VALIDATION_FAILED',
            '--no-azurite cannot be combined with --azurite-location or --azurite-port.',
        );
    }
    return { options, noAzurite, help };
}

/** The storage to use with --no-azurite: AzureWebJobsStorage from the environment, then local.settings.json. */
function externalStorage(appRoot: string, env: NodeJS.ProcessEnv): string {
    const fromFile = localSettingsValues(appRoot);
    const cs = env.AzureWebJobsStorage || fromFile.AzureWebJobsStorage || env.AZURE_STORAGE_CONNECTION_STRING;
    if (!cs) {
        throw new HvrError(
            'CONFIG_MISSING',
            '--no-azurite needs AzureWebJobsStorage (environment or local.settings.json Values) or AZURE_STORAGE_CONNECTION_STRING.',
        );
    }
    return cs;
}

/** What `hvr start` prints once everything listens. */
export function startBanner(host: LocalHost): string {
    const lines = [
        'Hyper-V Replica to Azure: local Functions host',
        '',
        `  API base URL    ${host.apiUrl}`,
        consoleLine(host.apiUrl, host.functionKey),
        `  Function key    ${host.functionKey}`,
        `  Master key      ${host.masterKey}`,
        `  Durable key     ${host.durableExtensionKey}   (durabletask_extension: /runtime/webhooks/durabletask/*)`,
        `                  (send a key as header x-functions-key or ?code=; the header wins when both are given)`,
    ];
    if (host.azurite) {
        lines.push(
            `  Azurite blob    ${host.azurite.blobUrl}`,
            `          queue   ${host.azurite.queueUrl}`,
            `          table   ${host.azurite.tableUrl}`,
        );
    }
    lines.push(
        `  Storage         ${host.storageConnectionString}`,
        `  Task hub        ${host.settings.DURABLE_TASK_HUB} (durable engine: ${host.durable})`,
        ...(host.providerBus
            ? [
                  `  Provider bus    PROVIDER_BUS=${host.providerBus.connectionString}`,
                  `                  (local Service Bus: providers connect with the Service Bus SDK and this string)`,
              ]
            : []),
        '',
        `Functions (${host.functions.length}):`,
    );
    const width = Math.max(0, ...host.functions.map((f) => f.name.length));
    for (const f of host.functions) lines.push(`  ${f.trigger.padEnd(13)} ${f.name.padEnd(width)}  ${f.detail}`);
    lines.push('', 'Press Ctrl-C to stop.');
    return lines.join('\n');
}

/** An error as the one line `hvr start` prints before it exits. */
export function startFailureLine(err: unknown): string {
    const message =
        ensureErrorType(err)
            .message.split('\n')
            .find((l) => l.trim() !== '') ?? 'unknown error';
    return `hvr start: cannot start: ${message.trim()}`;
}

/**
 * `hvr start`: runs until SIGINT or SIGTERM, then stops taking work, drains, stops Azurite. When it cannot start
 * (storage unreachable, port taken, settings missing) everything it had started is stopped, one line goes to
 * stderr and the exit code is 1: it never half-runs.
 */
export async function main(argv: string[]): Promise<number> {
    let host: LocalHost;
    try {
        const { options, noAzurite, help } = parseStartArgs(argv);
        if (help) {
            process.stdout.write(USAGE + '\n');
            return 0;
        }
        const appRoot = options.appRoot ?? process.cwd();
        if (noAzurite) options.storageConnectionString = externalStorage(appRoot, process.env);
        host = await startLocalHost({ ...options, appRoot });
    } catch (err) {
        process.stderr.write(startFailureLine(err) + '\n');
        return 1;
    }
    process.stdout.write(startBanner(host) + '\n');

    const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
        process.once('SIGINT', () => resolveSignal('SIGINT'));
        process.once('SIGTERM', () => resolveSignal('SIGTERM'));
    });
    process.stdout.write(`\n${signal}: stopping (Ctrl-C again to quit at once)...\n`);
    const force = (): void => {
        process.stderr.write('Stopped without draining.\n');
        process.exit(130);
    };
    process.once('SIGINT', force);
    try {
        const { abandonedInvocations } = await host.stop();
        process.stdout.write(
            abandonedInvocations > 0
                ? `Stopped; ${abandonedInvocations} invocation(s) did not finish in time.\n`
                : 'Stopped.\n',
        );
        return abandonedInvocations > 0 ? 1 : 0;
    } catch (err) {
        process.stderr.write(`hvr start: stopping failed: ${ensureErrorType(err).message}\n`);
        return 1;
    } finally {
        process.off('SIGINT', force);
    }
}
