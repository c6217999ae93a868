import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { HttpRequest, LogLevel, Timer } from '@azure/functions';
import { ensureErrorType, HvrError } from '../../shared/errors';
import { ServiceBusCommandReceiver } from '../../shared/bus/commandReceiver';
import { ServiceBusEventPublisher } from '../../shared/bus/eventPublisher';
import { PROVIDER_BUS_SETTING } from '../../shared/bus/providerEventsFromSetting';
import { PROVIDER_COMMANDS_QUEUE } from '../../shared/contracts/messages';
import { Clock, setPorts, systemClock } from '../../shared/ports';
import { connectionFromString, resetStorageConnections, storageConnection } from '../../shared/storage/connections';
import { RunningAzurite, startAzurite, StartAzuriteOptions } from '../azurite';
import { DtfxEngine } from '../durable/dtfx';
import { requireDtfxPrerequisites } from '../durable/dtfxHost';
import { durableEngineOf, type DurableEngineHandle, type DurableEngineName } from '../durable/engineChoice';
import { DurableRuntime } from '../durable/runtime';
import { appModules } from './appModules';
import { applySettings, localSettingsValues, resolveSettingReferences, routePrefixOf } from './appSettings';
import { BlobScanReport, BlobTriggerScanner } from './blobTriggers';
import { HttpFrontDoor } from './httpFrontDoor';
import { InFlightInvocations } from './inFlight';
import { invokeFunction } from './invoke';
import { hostStorage } from './hostStorage';
import { LocalProviderEventPublisher } from './localProviderEvents';
import { LocalSessionQueue, SessionQueuePump } from './localSessionQueue';
import { FunctionRegistry, functionRegistry, installFunctionsCore, RegisteredFunction } from './registry';
import {
    durableClientOf,
    providerCommandReceiver,
    serviceBusConfigured,
    ServiceBusClients,
} from './serviceBusReceivers';
import { TimerScheduler } from './timerTriggers';
import { localEventSubscriptions, localQueueClient } from './eventSubscriptions';
import { QueueDrainReport, QueueTriggerPump, queueTriggerSettings, triggerQueueName } from './queueTriggers';

export interface LocalHostOptions {
    /** Folder with package.json, host.json and (optionally) local.settings.json. Default: the current folder. */
    appRoot?: string;
    /** Modules to load instead of package.json `main` (tests load fixtures, even TypeScript ones under jest). */
    modules?: string[];
    /** Where registrations are captured. Default: the process's (or jest test file's) registry. */
    registry?: FunctionRegistry;
    /** HTTP port; 7071 like `func start`, 0 for any free port. */
    port?: number;
    /** Interface to listen on. Default 127.0.0.1. */
    hostname?: string;
    /** Use this storage for AzureWebJobsStorage instead of starting Azurite. */
    storageConnectionString?: string;
    /** Options for the embedded Azurite (ignored with storageConnectionString). */
    azurite?: StartAzuriteOptions;
    /** App settings over local.settings.json and the environment. */
    settings?: Record<string, string>;
    /** Time for schedules, receipts and (via ports) the app. Default: the system clock. */
    clock?: Clock;
    /** The key for `authLevel: 'function' | 'admin'`. Default: random, printed at start. */
    functionKey?: string;
    /**
     * Runs the app's orchestrations and activities and serves durable client bindings. Default: one the host
     * creates over the same registry and clock (and closes on stop).
     */
    runtime?: DurableRuntime;
    /**
     * Which Durable engine runs the orchestrations when no `runtime` is given: `embedded` (default, or
     * HVR_DURABLE) or `dtfx`, the real extension in engines/dtfx (fails at start if dotnet or the host is missing).
     */
    durable?: DurableEngineName;
    /** Milliseconds between blob container scans; 0 scans only on `scanNow()`. Default 2000. */
    blobScanIntervalMs?: number;
    /** Arm timers on their schedules (default true); false fires them only through `fireTimer`. */
    timers?: boolean;
    /** Poll the local provider queue (default true); false delivers only through `deliverQueuedMessages`. */
    queuePolling?: boolean;
    blobTrigger?: { maxTries?: number; contentLimitBytes?: number; leaseMs?: number };
    /** Storage queue triggers: how long a running message stays invisible (renewed), shortest poll wait. */
    queueTrigger?: { leaseSeconds?: number; minPollingIntervalMs?: number };
    serviceBus?: {
        maxDeliveryCount?: number;
        lockSeconds?: number;
        retryDelaySeconds?: number;
        pollIntervalMs?: number;
        /** With a real namespace: how long a receive waits for a session and for more of its messages. Default 5 s. */
        receiveWaitMs?: number;
    };
    /** How long `stop()` waits for invocations in flight. Default 30 s. */
    drainTimeoutMs?: number;
    /** Receives every host and function log line. Default: stdout. */
    log?: (line: string) => void;
}

/** One function as listed at start. */
export interface FunctionSummary {
    name: string;
    trigger: string;
    detail: string;
}

export interface LocalHost {
    /** Base URL of the HTTP listener, e.g. `http://127.0.0.1:7071`. */
    url: string;
    /** `url` plus the route prefix, e.g. `http://127.0.0.1:7071/api`. */
    apiUrl: string;
    functionKey: string;
    /** The engine in use. */
    durable: DurableEngineName;
    /** The embedded runtime, when that is the engine. */
    runtime?: DurableRuntime;
    /** The real engine, when that is the engine. */
    dtfx?: DtfxEngine;
    azurite?: RunningAzurite;
    /** The AzureWebJobsStorage connection string in use. */
    storageConnectionString: string;
    /** The app settings the functions see. */
    settings: Record<string, string>;
    functions: FunctionSummary[];
    /** Scans blob containers once and waits for the invocations it started. */
    scanNow(): Promise<BlobScanReport>;
    /** Runs a timer function now and waits for it. */
    fireTimer(name: string): Promise<void>;
    /** Delivers what the local provider queues hold now and waits; returns how many messages were taken in. */
    deliverQueuedMessages(): Promise<number>;
    /** Runs the storage queue triggers on what their queues hold now, until empty, and waits. */
    drainStorageQueues(): Promise<QueueDrainReport>;
    /**
     * Provider events as activities publish them, one Storage queue per site; absent when PROVIDER_BUS is set
     * (events then go to the namespace's `provider-events` topic).
     */
    providerEvents?: LocalProviderEventPublisher;
    /** The local queue behind a serviceBusTrigger's queue (to send provider messages to) when its connection is empty. */
    providerQueue(queueName: string): LocalSessionQueue;
    /** Stops taking work, drains invocations (bounded), stops Azurite if it started one. */
    stop(): Promise<{ abandonedInvocations: number }>;
}

const DURABLE_TRIGGERS = new Set(['orchestrationtrigger', 'activitytrigger', 'entitytrigger']);

function consoleLog(line: string): void {
    process.stdout.write(line + '\n');
}

function loadApp(registry: FunctionRegistry, modules: string[]): void {
    installFunctionsCore(registry);
    for (const file of modules) {
        try {
            // eslint-disable-next-line @typescript-eslint/no-require-imports
            require(file);
        } catch (err) {
            throw new HvrError(
                'INTERNAL',
                `Loading ${file} failed: ${ensureErrorType(err).message}`,
                { file },
                { cause: err },
            );
        }
    }
}

/**
 * Starts the local Functions host: loads the app's registrations as the worker does, serves HTTP functions,
 * fires blob, Storage queue and timer triggers (emulating the Event Grid subscription that feeds the merge queue), delivers provider messages from a local queue and hands durable client
 * bindings from `runtime`. Everything it starts, `stop()` stops.
 */
export async function startLocalHost(options: LocalHostOptions = {}): Promise<LocalHost> {
    const appRoot = resolve(options.appRoot ?? process.cwd());
    const log = options.log ?? consoleLog;
    const clock = options.clock ?? systemClock;
    const registry = options.registry ?? functionRegistry();
    const cleanups: (() => unknown)[] = [];
    const runCleanups = async (): Promise<void> => {
        for (const cleanup of cleanups.splice(0).reverse()) {
            try {
                await cleanup();
            } catch (err) {
                log(`Stopping: ${ensureErrorType(err).message}`);
            }
        }
    };

    try {
        let azurite: RunningAzurite | undefined;
        let storageCs = options.storageConnectionString;
        if (!storageCs) {
            azurite = await startAzurite(options.azurite);
            cleanups.push(() => azurite?.stop());
            storageCs = azurite.connectionString;
        }
        const settings = resolveSettings(appRoot, storageCs, azurite !== undefined, options.settings);
        cleanups.push(applySettings(settings));
        resetStorageConnections();
        cleanups.push(resetStorageConnections);
        if (options.clock) cleanups.push(setPorts({ clock: options.clock }));

        loadApp(registry, options.modules ?? appModules(appRoot));
        const all = [...registry.functions.values()];
        const ofType = (type: string): RegisteredFunction[] =>
            all.filter((f) => f.trigger.type.toLowerCase() === type.toLowerCase());

        const host = hostStorage(settings.AzureWebJobsStorage!);
        const busClients = new ServiceBusClients(settings);
        cleanups.push(() => busClients.close());
        let providerEvents: LocalProviderEventPublisher | undefined;
        if (serviceBusConfigured(settings, PROVIDER_BUS_SETTING)) {
            // The host owns this publisher (not the process-wide default) so stop() closes its connection.
            const publisher = new ServiceBusEventPublisher(busClients.get(PROVIDER_BUS_SETTING));
            cleanups.push(setPorts({ providerEvents: () => publisher }));
        } else {
            const publisher = new LocalProviderEventPublisher(host, clock);
            cleanups.push(setPorts({ providerEvents: () => publisher }));
            providerEvents = publisher;
        }
        const inFlight = new InFlightInvocations();
        const engineName: DurableEngineName = options.runtime ? 'embedded' : durableEngineOf(options.durable);
        // Asked for the real engine: fail now, naming what is missing, before anything else starts.
        const dtfxPrerequisites = engineName === 'dtfx' ? requireDtfxPrerequisites() : undefined;
        let runtime = options.runtime;
        let dtfx: DtfxEngine | undefined;
        let durable: DurableEngineHandle | undefined;
        const engine = (): DurableEngineHandle => {
            if (!durable) throw new HvrError('INTERNAL', 'The durable engine is not started yet');
            return durable;
        };
        const invoke = (fn: RegisteredFunction, input: unknown, triggerMetadata?: Record<string, unknown>) =>
            inFlight.track(async () => {
                const outcome = await invokeFunction(fn, input, {
                    runtime: engine(),
                    triggerMetadata,
                    log: (level: LogLevel, message: string) => {
                        if (level !== 'trace' && level !== 'debug') log(`[${fn.name}] ${message}`);
                    },
                });
                return outcome.result;
            });

        // HTTP
        const functionKey = options.functionKey ?? randomBytes(24).toString('base64url');
        const routePrefix = routePrefixOf(appRoot);
        const frontDoor = new HttpFrontDoor({
            functions: ofType('httpTrigger'),
            routePrefix,
            functionKey,
            invoke: (fn, request: HttpRequest) => invoke(fn, request),
            accepting: () => inFlight.accepting,
            durableOrigin: () => durable?.httpOrigin,
            log,
        });
        const url = await frontDoor.listen(options.port ?? 7071, options.hostname ?? '127.0.0.1');

        // The engine starts once the front door's URL is known: the real engine's status links name it.
        if (dtfxPrerequisites) {
            log(
                `[durable] starting the Durable Functions extension (engines/dtfx) on task hub ${settings.DURABLE_TASK_HUB}`,
            );
            const started = await DtfxEngine.start({
                registry,
                storageConnectionString: settings.AzureWebJobsStorage!,
                taskHub: settings.DURABLE_TASK_HUB!,
                prerequisites: dtfxPrerequisites,
                webhookBase: `${url}/runtime/webhooks/durabletask`,
                log: (line) => log(`[durable] ${line}`),
            }).catch(async (err: unknown) => {
                await frontDoor.stopListening();
                throw err;
            });
            cleanups.push(() => started.close());
            dtfx = started;
            durable = started;
        } else {
            if (!runtime) {
                const created = new DurableRuntime({
                    registry,
                    clock,
                    taskHub: settings.DURABLE_TASK_HUB,
                    log: (line) => log(`[durable] ${line}`),
                });
                cleanups.push(() => created.close());
                runtime = created;
            }
            // Start the durable client's HTTP API now: its URLs (status, raise event) are proxied under /runtime.
            await runtime.clientBinding();
            durable = runtime;
        }
        const apiUrl = routePrefix ? `${url}/${routePrefix.replace(/^\/+|\/+$/g, '')}` : url;

        // Blobs, and the Event Grid subscriptions the scan emulates
        const blobFunctions = ofType('blobTrigger');
        const eventSubscriptions = localEventSubscriptions(all, settings);
        const scanner = new BlobTriggerScanner({
            functions: blobFunctions,
            eventSubscriptions,
            host,
            settings,
            connectionFor: (setting) =>
                setting === 'AzureWebJobsStorage' ? host.connection : storageConnection(setting, settings),
            invoke: (call) => invoke(call.fn, call.input, call.triggerMetadata),
            clock,
            log,
            ...options.blobTrigger,
        });
        const scanInterval = options.blobScanIntervalMs ?? 2000;
        if (blobFunctions.length + eventSubscriptions.length > 0 && scanInterval > 0) scanner.start(scanInterval);

        // Storage queues
        const queueSettings = queueTriggerSettings(appRoot);
        const queuePumps = ofType('queueTrigger').map((fn) => {
            const connection = typeof fn.trigger.connection === 'string' ? fn.trigger.connection : '';
            const queueName = triggerQueueName(fn, settings);
            return new QueueTriggerPump({
                fn,
                queue: localQueueClient(settings, connection, queueName),
                poisonQueue: localQueueClient(settings, connection, `${queueName}-poison`),
                settings: queueSettings,
                ...options.queueTrigger,
                invoke: (f, input, metadata) => invoke(f, input, metadata),
                log,
            });
        });
        if (options.queuePolling !== false) for (const pump of queuePumps) pump.start();

        // Timers
        const timers = new TimerScheduler({
            functions: ofType('timerTrigger'),
            host,
            settings,
            clock,
            invoke: (fn, timer: Timer) => invoke(fn, timer),
            log,
        });
        if (options.timers !== false) await timers.start();

        // Provider messages
        const queues = new Map<string, LocalSessionQueue>();
        const pumps: SessionQueuePump[] = [];
        const receivers: ServiceBusCommandReceiver[] = [];
        const busFunctions = ofType('serviceBusTrigger');
        for (const fn of busFunctions) {
            if (typeof fn.trigger.queueName !== 'string') {
                throw new HvrError('CONFIG_MISSING', `${fn.name}: only Service Bus queue triggers are hosted locally.`);
            }
            const queueName = resolveSettingReferences(fn.trigger.queueName, settings);
            const connection = typeof fn.trigger.connection === 'string' ? fn.trigger.connection : '';
            if (serviceBusConfigured(settings, connection)) {
                if (queueName !== PROVIDER_COMMANDS_QUEUE) {
                    throw new HvrError(
                        'CONFIG_MISSING',
                        `${fn.name} reads queue ${queueName} through ${connection}, which is set; this host receives ` +
                            `only ${PROVIDER_COMMANDS_QUEUE} from a namespace. Clear ${connection} to deliver ` +
                            `from the local queue (see docs/local-host.md).`,
                        { setting: connection },
                    );
                }
                const receiver = providerCommandReceiver({
                    fn,
                    client: busClients.get(connection),
                    durableClient: await durableClientOf(engine()),
                    log,
                    receiveWaitMs: options.serviceBus?.receiveWaitMs,
                    backoffMs: options.serviceBus?.pollIntervalMs,
                });
                receivers.push(receiver);
                receiver.start();
                continue;
            }
            let queue = queues.get(queueName);
            if (!queue) {
                queue = new LocalSessionQueue(queueName, host, clock);
                queues.set(queueName, queue);
            }
            await queue.queue();
            const pump = new SessionQueuePump({
                queue,
                deliver: (_envelope, body, metadata) => invoke(fn, body, metadata),
                clock,
                log,
                ...options.serviceBus,
            });
            pumps.push(pump);
            if (options.queuePolling !== false) pump.start();
        }

        const functions = describeFunctions(all, frontDoor, apiUrl, timers, settings);
        // A failure after this point must still stop the receivers before the clients close.
        cleanups.push(() => Promise.all(receivers.map((r) => r.stop())));
        let stopping: Promise<{ abandonedInvocations: number }> | undefined;
        const stop = (): Promise<{ abandonedInvocations: number }> => {
            stopping ??= (async () => {
                const closing = frontDoor.stopListening();
                const drainBound = options.drainTimeoutMs ?? 30_000;
                const drainStarted = Date.now();
                await scanner.stop();
                await timers.stop();
                await Promise.all(queuePumps.map((p) => p.stop()));
                await Promise.all(pumps.map((p) => p.stop()));
                await stopReceivers(receivers, busClients, Math.max(0, drainBound - (Date.now() - drainStarted)));
                const abandoned = await inFlight.drain(Math.max(0, drainBound - (Date.now() - drainStarted)));
                if (abandoned > 0) log(`Stopped with ${abandoned} invocation(s) still running.`);
                // Responses of finished invocations are still being written: give them a moment.
                await frontDoor.finish(abandoned > 0 ? 0 : 2000);
                await closing;
                await runCleanups();
                return { abandonedInvocations: abandoned };
            })();
            return stopping;
        };

        return {
            url,
            apiUrl,
            functionKey,
            durable: engineName,
            runtime,
            dtfx,
            azurite,
            storageConnectionString: settings.AzureWebJobsStorage!,
            settings,
            functions,
            providerEvents,
            scanNow: () => scanner.scanNow(),
            fireTimer: (name) => timers.fireTimer(name),
            deliverQueuedMessages: async () => {
                let total = 0;
                for (const pump of pumps) total += await pump.drainOnce();
                return total;
            },
            drainStorageQueues: async () => {
                const total: QueueDrainReport = { received: 0, succeeded: 0, failed: 0, poisoned: 0 };
                for (const pump of queuePumps) {
                    const r = await pump.drainOnce();
                    for (const k of Object.keys(total) as (keyof QueueDrainReport)[]) total[k] += r[k];
                }
                return total;
            },
            providerQueue: (queueName) => {
                const queue = queues.get(queueName);
                if (!queue) {
                    throw new Error(
                        `No serviceBusTrigger reads queue "${queueName}" from a local queue ` +
                            `(have: ${[...queues.keys()].join(', ') || 'none'}; with a namespace set, send to it instead)`,
                    );
                }
                return queue;
            },
            stop,
        };
    } catch (err) {
        await runCleanups();
        throw err;
    }
}

/**
 * Stops the Service Bus receivers: each finishes and settles the message it holds, bounded by `boundMs`; past
 * it the clients are closed, which ends a receive still waiting for a session (a lock not settled then
 * expires and the broker redelivers).
 */
async function stopReceivers(
    receivers: ServiceBusCommandReceiver[],
    clients: ServiceBusClients,
    boundMs: number,
): Promise<void> {
    if (receivers.length === 0) return;
    const stopped = Promise.all(receivers.map((r) => r.stop()));
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), boundMs)));
    const outcome = await Promise.race([stopped.then(() => 'stopped' as const), bound]);
    clearTimeout(timer);
    if (outcome === 'timeout') await clients.close();
    await stopped;
}

/**
 * The app settings, as `func start` assembles them: local.settings.json `Values`, overridden by the
 * environment, then by explicit settings. With the embedded Azurite, every `UseDevelopmentStorage=true`
 * points at it, and AzureWebJobsStorage and REPLICA_STORAGE default to it.
 */
export function resolveSettings(
    appRoot: string,
    storageConnectionString: string,
    embeddedAzurite: boolean,
    explicit: Record<string, string> = {},
): Record<string, string> {
    const fromFile = localSettingsValues(appRoot);
    const settings: Record<string, string> = { ...fromFile };
    for (const name of Object.keys(fromFile)) {
        const env = process.env[name];
        if (env !== undefined) settings[name] = env;
    }
    Object.assign(settings, explicit);
    if (embeddedAzurite) {
        for (const [name, value] of Object.entries(settings)) {
            if (value.trim().toLowerCase() === 'usedevelopmentstorage=true') settings[name] = storageConnectionString;
        }
    }
    if (embeddedAzurite || !explicit.AzureWebJobsStorage) settings.AzureWebJobsStorage = storageConnectionString;
    settings.REPLICA_STORAGE ||= storageConnectionString;
    settings.DURABLE_TASK_HUB ||= 'hvrlocal';
    settings.FUNCTIONS_WORKER_RUNTIME ||= 'node';
    // Validate early: a bad connection string should fail at start, not on the first blob.
    connectionFromString(storageConnectionString);
    return settings;
}

function describeFunctions(
    all: RegisteredFunction[],
    frontDoor: HttpFrontDoor,
    apiUrl: string,
    timers: TimerScheduler,
    settings: Record<string, string>,
): FunctionSummary[] {
    const base = apiUrl.replace(/\/[^/]*$/, '');
    const nextTimers = timers.nextOccurrences();
    return all
        .map((fn): FunctionSummary => {
            const t = fn.trigger;
            const type = t.type;
            switch (type.toLowerCase()) {
                case 'httptrigger': {
                    const route = frontDoor.routes.find((r) => r.fn === fn)!;
                    const auth = route.authLevel === 'anonymous' ? '' : ` (key: ${route.authLevel})`;
                    return {
                        name: fn.name,
                        trigger: 'http',
                        detail: `${route.methods.join(',')} ${base}${route.displayPath}${auth}`,
                    };
                }
                case 'blobtrigger':
                    return {
                        name: fn.name,
                        trigger: 'blob',
                        detail: `${String(t.path)} via ${String(t.connection)} (${t.source === 'EventGrid' ? 'Event Grid semantics' : 'polling semantics'}, container scan)`,
                    };
                case 'queuetrigger':
                    return {
                        name: fn.name,
                        trigger: 'queue',
                        detail: `${String(t.queueName)} via ${String(t.connection)} (Storage queue; poison: ${String(t.queueName)}-poison)`,
                    };
                case 'timertrigger': {
                    const next = nextTimers.get(fn.name);
                    return {
                        name: fn.name,
                        trigger: 'timer',
                        detail: `${String(t.schedule)} (UTC), next ${next ? next.toISOString() : 'never'}${t.runOnStartup ? ', runOnStartup' : ''}`,
                    };
                }
                case 'servicebustrigger':
                    return {
                        name: fn.name,
                        trigger: 'serviceBus',
                        detail: `queue ${String(t.queueName)}${t.isSessionsEnabled ? ' (sessions)' : ''} ${
                            serviceBusConfigured(settings, String(t.connection))
                                ? `from Service Bus via ${String(t.connection)} (shared command handler)`
                                : `from the local Storage queue (${String(t.connection)} not set)`
                        }`,
                    };
                default:
                    return {
                        name: fn.name,
                        trigger: type.replace(/Trigger$/i, ''),
                        detail: DURABLE_TRIGGERS.has(type.toLowerCase())
                            ? `durable task hub ${settings.DURABLE_TASK_HUB}`
                            : 'not hosted locally',
                    };
            }
        })
        .sort((a, b) => a.trigger.localeCompare(b.trigger) || a.name.localeCompare(b.name));
}
