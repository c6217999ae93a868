import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { HttpRequest, LogLevel, Timer } from '@azure/functions';
import { ensureErrorType, HvrError } from '../../../../shared/errors';
import { ServiceBusCommandReceiver } from '../../../../shared/bus/commandReceiver';
import { ServiceBusEventPublisher } from '../../../../shared/bus/eventPublisher';
import { PROVIDER_BUS_SETTING } from '../../../../shared/bus/providerEventsFromSetting';
import { PROVIDER_COMMANDS_QUEUE } from '../../../../shared/contracts/messages';
import { Clock, setPorts, systemClock } from '../../../../shared/ports';
import {
    connectionFromString,
    resetStorageConnections,
    storageConnection,
} from '../../../../shared/storage/connections';
import { RunningAzurite, startAzurite, StartAzuriteOptions } from '../azurite';
import { DtfxEngine } from '../durable/dtfx';
import { requireDtfxPrerequisites } from '../durable/dtfxHost';
import { durableEngineOf, type DurableEngineHandle, type DurableEngineName } from '../durable/engineChoice';
import { DurableRuntime } from '../durable/runtime';
import { appModules } from './appModules';
import { applySettings, localSettingsValues, resolveSettingReferences, routePrefixOf } from './appSettings';
import { BlobScanReport, BlobTriggerScanner } from './blobTriggers';
import { publicClientBinding } from './durableWebhooks';
import { HostKeys, HttpFrontDoor } from './httpFrontDoor';
import { assertLoopback, assertStorageReachable, listenFailure } from './startChecks';
import { InFlightInvocations } from './inFlight';
import { invokeFunction } from './invoke';
import { ensureReplicaContainers } from '../../../../tools/platform/replicaContainers';
import { hostStorage } from './hostStorage';
import { LocalProviderBus } from '../../../../tools/platform/localProviderBus';
import { FunctionRegistry, functionRegistry, installFunctionsCore, RegisteredFunction } from './registry';
import {
    durableClientOf,
    providerCommandReceiver,
    serviceBusConfigured,
    ServiceBusClients,
} from '../../../../tools/platform/serviceBusReceivers';
import { serviceBusHostSettings } from './serviceBusSettings';
import { TimerScheduler } from './timerTriggers';
import { localEventSubscriptions, localQueueClient } from '../../../../tools/platform/eventSubscriptions';
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
    /** The host key for `authLevel: 'function'` routes. Default: random, printed at start. */
    functionKey?: string;
    /** The master key: every route, `authLevel: 'admin'` included, and the durable webhooks. Default: random. */
    masterKey?: string;
    /** The system key `durabletask_extension` for `/runtime/webhooks/durabletask/*`. Default: random. */
    durableExtensionKey?: string;
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
    /**
     * Poll storage queue triggers and receive provider commands (default true); false leaves both on their
     * queues (storage queues then run only through `drainStorageQueues`).
     */
    queuePolling?: boolean;
    blobTrigger?: { maxTries?: number; contentLimitBytes?: number; leaseMs?: number };
    /** Storage queue triggers: how long a running message stays invisible (renewed), shortest poll wait. */
    queueTrigger?: { leaseSeconds?: number; minPollingIntervalMs?: number };
    serviceBus?: {
        /** The local broker's provider-commands `maxDeliveryCount` (infra: 10). */
        maxDeliveryCount?: number;
        /** The local broker's lock duration (infra: 60 s). */
        lockSeconds?: number;
        /** Pause after a receive failure before accepting sessions again. Default 2 s. */
        pollIntervalMs?: number;
        /** How long a receive waits for a session and for more of its messages. Default 5 s. */
        receiveWaitMs?: number;
        /** The local broker's port when PROVIDER_BUS is empty; 0 (default) for any free one. */
        brokerPort?: number;
        /** How often the local broker looks for newly registered sites. Default 1 s. */
        siteScanIntervalMs?: number;
        /** The local broker's duplicate-detection window (infra: 30 min). */
        duplicateDetectionWindowSeconds?: number;
        /** The largest message the local broker accepts (default 256 KiB, the Standard tier's limit). */
        maxMessageSizeBytes?: number;
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
    masterKey: string;
    /** The `durabletask_extension` system key; the durable client binding's webhook URLs carry it. */
    durableExtensionKey: string;
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
    /** Runs the storage queue triggers on what their queues hold now, until empty, and waits. */
    drainStorageQueues(): Promise<QueueDrainReport>;
    /**
     * The local Service Bus serving the provider channel, started when PROVIDER_BUS is empty; absent when it
     * names a namespace. Either way the app's PROVIDER_BUS setting is the connection string providers use.
     */
    providerBus?: LocalProviderBus;
    /** Stops taking work, drains invocations (bounded), stops Azurite if it started one. */
    stop(): Promise<{ abandonedInvocations: number }>;
}

const DURABLE_TRIGGERS = new Set(['orchestrationtrigger', 'activitytrigger', 'entitytrigger']);

function newKey(): string {
    return randomBytes(24).toString('base64url');
}

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
        let providerBus: LocalProviderBus | undefined;
        if (!serviceBusConfigured(settings, PROVIDER_BUS_SETTING)) {
            // As a namespace would: the app and providers reach it through PROVIDER_BUS, like any other.
            const started = await LocalProviderBus.start({
                port: options.serviceBus?.brokerPort,
                maxMessageSizeBytes: options.serviceBus?.maxMessageSizeBytes,
                lockDurationMs: options.serviceBus?.lockSeconds ? options.serviceBus.lockSeconds * 1000 : undefined,
                commandMaxDeliveryCount: options.serviceBus?.maxDeliveryCount,
                duplicateDetectionWindowMs:
                    options.serviceBus?.duplicateDetectionWindowSeconds === undefined
                        ? undefined
                        : options.serviceBus.duplicateDetectionWindowSeconds * 1000,
                siteScanIntervalMs: options.serviceBus?.siteScanIntervalMs,
                log,
            });
            cleanups.push(() => started.stop());
            providerBus = started;
            settings[PROVIDER_BUS_SETTING] = started.connectionString;
        }
        cleanups.push(applySettings(settings));
        resetStorageConnections();
        cleanups.push(resetStorageConnections);
        if (options.clock) cleanups.push(setPorts({ clock: options.clock }));

        loadApp(registry, options.modules ?? appModules(appRoot));
        const all = [...registry.functions.values()];
        const ofType = (type: string): RegisteredFunction[] =>
            all.filter((f) => f.trigger.type.toLowerCase() === type.toLowerCase());

        const host = hostStorage(settings.AzureWebJobsStorage!);
        await assertStorageReachable(host);
        // Before any trigger or provider runs: a write-only upload grant cannot create its container.
        const createdContainers = await ensureReplicaContainers(storageConnection('REPLICA_STORAGE', settings));
        if (createdContainers.length > 0) log(`Created blob containers: ${createdContainers.join(', ')}.`);
        const busClients = new ServiceBusClients(settings);
        cleanups.push(() => busClients.close());
        // The host owns this publisher (not the process-wide default) so stop() closes its connection.
        const busPublisher = new ServiceBusEventPublisher(busClients.get(PROVIDER_BUS_SETTING));
        const publisher = providerBus ? providerBus.publisher(busPublisher) : busPublisher;
        cleanups.push(setPorts({ providerEvents: () => publisher }));
        if (providerBus) {
            await providerBus.watchSites();
            for (const line of providerBus.describe()) log(line);
        }
        const busSettings = serviceBusHostSettings(appRoot);
        if (busSettings.ignored.length > 0) {
            log(
                `host.json: extensions.serviceBus.${busSettings.ignored.join(', ')} ignored (not read by the ` +
                    `Service Bus extension 5.x, which the bundle loads)`,
            );
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
        const keys: HostKeys = {
            function: options.functionKey ?? newKey(),
            master: options.masterKey ?? newKey(),
            durableExtension: options.durableExtensionKey ?? newKey(),
        };
        const frontDoorAt: { origin?: string } = {};
        // What the app's durable client gets: webhook URLs on the front door with the system key (its own calls
        // go to the engine's loopback RPC address, which no other interface can reach).
        const appDurable = {
            clientBinding: async (): Promise<unknown> => {
                const current = engine();
                const binding = await current.clientBinding();
                const internalOrigin = current.httpOrigin;
                if (!frontDoorAt.origin || !internalOrigin) return binding;
                return publicClientBinding(binding, {
                    internalOrigin,
                    publicOrigin: frontDoorAt.origin,
                    key: keys.durableExtension,
                });
            },
        };
        const invoke = (fn: RegisteredFunction, input: unknown, triggerMetadata?: Record<string, unknown>) =>
            inFlight.track(async () => {
                const outcome = await invokeFunction(fn, input, {
                    runtime: appDurable,
                    triggerMetadata,
                    log: (level: LogLevel, message: string) => {
                        if (level !== 'trace' && level !== 'debug') log(`[${fn.name}] ${message}`);
                    },
                });
                return outcome.result;
            });

        // HTTP
        const routePrefix = routePrefixOf(appRoot);
        const frontDoor = new HttpFrontDoor({
            functions: ofType('httpTrigger'),
            routePrefix,
            keys,
            invoke: (fn, request: HttpRequest) => invoke(fn, request),
            accepting: () => inFlight.accepting,
            durableOrigin: () => durable?.httpOrigin,
            log,
        });
        const port = options.port ?? 7071;
        const hostname = options.hostname ?? '127.0.0.1';
        const url = await frontDoor.listen(port, hostname).catch((err: unknown) => {
            throw listenFailure(err, port, hostname);
        });
        // Anything failing from here on must not leave the port held (a half-started host).
        cleanups.push(async () => {
            await frontDoor.stopListening();
        });
        frontDoorAt.origin = url;

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
        assertLoopback(durable.httpOrigin, 'the durable engine HTTP API');
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
        cleanups.push(() => scanner.stop());
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
        cleanups.push(() => Promise.all(queuePumps.map((p) => p.stop())));
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
        cleanups.push(() => timers.stop());
        if (options.timers !== false) await timers.start();

        // Provider messages: provider-commands from the namespace PROVIDER_BUS names (the local broker or Azure)
        const receivers: ServiceBusCommandReceiver[] = [];
        for (const fn of ofType('serviceBusTrigger')) {
            const queueName =
                typeof fn.trigger.queueName === 'string'
                    ? resolveSettingReferences(fn.trigger.queueName, settings)
                    : undefined;
            const connection = typeof fn.trigger.connection === 'string' ? fn.trigger.connection : '';
            if (queueName !== PROVIDER_COMMANDS_QUEUE || !serviceBusConfigured(settings, connection)) {
                throw new HvrError(
                    'CONFIG_MISSING',
                    `${fn.name} reads ${queueName === undefined ? 'a topic' : `queue ${queueName}`} through ` +
                        `${connection || 'no connection'}; this host receives only ${PROVIDER_COMMANDS_QUEUE}, ` +
                        `through ${PROVIDER_BUS_SETTING} (see docs/local-host.md).`,
                    { setting: connection },
                );
            }
            const receiver = providerCommandReceiver({
                fn,
                client: busClients.get(connection),
                durableClient: await durableClientOf(engine()),
                log,
                settings: busSettings,
                receiveWaitMs: options.serviceBus?.receiveWaitMs,
                backoffMs: options.serviceBus?.pollIntervalMs,
            });
            receivers.push(receiver);
            if (options.queuePolling !== false) receiver.start();
        }

        const functions = describeFunctions(all, frontDoor, apiUrl, timers, settings, providerBus !== undefined);
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
            functionKey: keys.function,
            masterKey: keys.master,
            durableExtensionKey: keys.durableExtension,
            durable: engineName,
            runtime,
            dtfx,
            azurite,
            storageConnectionString: settings.AzureWebJobsStorage!,
            settings,
            functions,
            providerBus,
            scanNow: () => scanner.scanNow(),
            fireTimer: (name) => timers.fireTimer(name),
            drainStorageQueues: async () => {
                const total: QueueDrainReport = { received: 0, succeeded: 0, failed: 0, poisoned: 0 };
                for (const pump of queuePumps) {
                    const r = await pump.drainOnce();
                    for (const k of Object.keys(total) as (keyof QueueDrainReport)[]) total[k] += r[k];
                }
                return total;
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
    localBroker: boolean,
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
                                ? `from Service Bus via ${String(t.connection)}${
                                      localBroker && t.connection === PROVIDER_BUS_SETTING ? ' (the local broker)' : ''
                                  } (shared command handler)`
                                : `not hosted: ${String(t.connection)} is not set`
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
