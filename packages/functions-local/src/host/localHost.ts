import { randomBytes } from 'node:crypto';
import { hostname as machineName } from 'node:os';
import { resolve } from 'node:path';
import { HttpRequest, LogLevel, Timer } from '@azure/functions';
import { ensureErrorType, LocalPlatformError } from '../errors';
import { realClock, type Clock } from '../durable/clock';
import { RunningAzurite, startAzurite, StartAzuriteOptions } from '../azurite';
import { DtfxEngine } from '../durable/dtfx';
import { requireDtfxPrerequisites } from '../durable/dtfxHost';
import { durableClientBindings } from '../durable/clientBinding';
import { durableEngineOf, type DurableEngineHandle, type DurableEngineName } from '../durable/engineChoice';
import { DurableRuntime } from '../durable/runtime';
import { openPersistentState, type PersistentDurableState } from '../durable/blobStore';
import type { IfHubOwned } from '../durable/hubLease';
import { appModules } from './appModules';
import { applyDefaults, applySettings, resolveSettings, routePrefixOf, storageSetting } from './appSettings';
import { BlobScanReport, BlobTriggerScanner } from './blobTriggers';
import { publicClientBinding } from './durableWebhooks';
import { describeFunctions, type FunctionSummary } from './functionList';
import { HostKeys, HttpFrontDoor } from './httpFrontDoor';
import { assertLoopback, assertStorageReachable, listenFailure } from './startChecks';
import { InFlightInvocations } from './inFlight';
import { invokeFunction } from './invoke';
import { hostStorage, localQueueClient } from './hostStorage';
import type { HostedTrigger, HostPlugin } from './plugins';
import { FunctionRegistry, functionRegistry, installFunctionsCore, RegisteredFunction } from './registry';
import { TimerScheduler } from './timerTriggers';
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
    /**
     * Where the embedded runtime keeps its instances: `memory` (default: gone when the host stops) or `storage`,
     * blobs in AzureWebJobsStorage owned by one host at a time through a lease, so a host restarted on the same
     * storage resumes the orchestrations where they stood (README, "Durable state").
     */
    durableState?: DurableStateLocation;
    /** With `durableState: 'storage'`, when another host owns the task hub: wait for it (default) or fail. */
    ifTaskHubOwned?: IfHubOwned;
    /** Milliseconds between blob container scans; 0 scans only on `scanNow()`. Default 2000. */
    blobScanIntervalMs?: number;
    /** Arm timers on their schedules (default true); false fires them only through `fireTimer`. */
    timers?: boolean;
    /**
     * Poll storage queue triggers and start the plugins' triggers (default true); false leaves their messages
     * on their queues (storage queues then run only through `drainStorageQueues`).
     */
    queuePolling?: boolean;
    blobTrigger?: { maxTries?: number; contentLimitBytes?: number; leaseMs?: number };
    /** Storage queue triggers: how long a running message stays invisible (renewed), shortest poll wait. */
    queueTrigger?: { leaseSeconds?: number; minPollingIntervalMs?: number };
    /** The app-specific parts (its buses, containers, event subscriptions, triggers the host does not serve). */
    plugins?: HostPlugin[];
    /** How long `stop()` waits for invocations in flight. Default 30 s. */
    drainTimeoutMs?: number;
    /** Receives every host and function log line. Default: stdout. */
    log?: (line: string) => void;
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
    /** Stops taking work, drains invocations (bounded), stops Azurite if it started one. */
    stop(): Promise<{ abandonedInvocations: number }>;
}

/** Where the host's embedded durable runtime keeps its instances (LocalHostOptions.durableState). */
export type DurableStateLocation = 'memory' | 'storage';

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
            throw new LocalPlatformError(
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
 * fires blob, Storage queue and timer triggers (and the Event Grid subscriptions the plugins declare), hands
 * durable client bindings from the durable engine, and lets the plugins host the rest. Everything it starts,
 * `stop()` stops.
 */
export async function startLocalHost(options: LocalHostOptions = {}): Promise<LocalHost> {
    const appRoot = resolve(options.appRoot ?? process.cwd());
    const log = options.log ?? consoleLog;
    const clock = options.clock ?? realClock;
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
            void azurite.exited.then((exit) => {
                if (exit.expected) return;
                log(
                    `Azurite stopped unexpectedly (${exit.signal ?? `exit code ${exit.code}`}): ${exit.reason}. ` +
                        'Every storage call fails from now on; restart the host.',
                );
            });
            storageCs = azurite.connectionString;
        }
        const plugins = options.plugins ?? [];
        const settings = resolveSettings(appRoot, storageCs, azurite !== undefined, options.settings);
        for (const plugin of plugins) {
            // Registered first, so a plugin's stop runs after everything started later has stopped.
            cleanups.push(() => plugin.stop?.());
            await plugin.prepare?.({
                appRoot,
                settings,
                storageConnectionString: storageCs,
                clock: options.clock,
                log,
            });
        }
        applyDefaults(settings);
        cleanups.push(applySettings(settings));

        loadApp(registry, options.modules ?? appModules(appRoot));
        const all = [...registry.functions.values()];
        const ofType = (type: string): RegisteredFunction[] =>
            all.filter((f) => f.trigger.type.toLowerCase() === type.toLowerCase());

        const host = hostStorage(settings.AzureWebJobsStorage!);
        await assertStorageReachable(host);
        for (const plugin of plugins) await plugin.start?.({ appRoot, settings, functions: all, log });
        const inFlight = new InFlightInvocations();
        const engineName: DurableEngineName = options.runtime ? 'embedded' : durableEngineOf(options.durable);
        // Asked for the real engine: fail now, naming what is missing, before anything else starts.
        const dtfxPrerequisites = engineName === 'dtfx' ? requireDtfxPrerequisites() : undefined;
        let runtime = options.runtime;
        // The task hub is taken before anything serves: a host waiting for it takes no work meanwhile.
        let persistent: PersistentDurableState | undefined;
        if (!runtime && engineName === 'embedded' && options.durableState === 'storage') {
            persistent = await openPersistentState(host.connection.blob, settings.DURABLE_TASK_HUB!, {
                owner: `${machineName()} pid ${process.pid} (port ${options.port ?? 7071})`,
                ifOwned: options.ifTaskHubOwned,
                log: (line) => log(`[durable] ${line}`),
                onLost: (why) => {
                    log(`[durable] ${why}: the durable runtime stops taking work; restart this host`);
                    void runtime?.close();
                },
            });
            const lease = persistent.lease;
            cleanups.push(() => lease.release());
        }
        let dtfx: DtfxEngine | undefined;
        let durable: DurableEngineHandle | undefined;
        const engine = (): DurableEngineHandle => {
            if (!durable) throw new LocalPlatformError('INTERNAL', 'The durable engine is not started yet');
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
                    bindings: [durableClientBindings(appDurable)],
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
                    ...(persistent ? { store: persistent.store } : {}),
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
        const eventSubscriptions = plugins.flatMap((p) => p.eventSubscriptions?.(all, settings) ?? []);
        const scanner = new BlobTriggerScanner({
            functions: blobFunctions,
            eventSubscriptions,
            host,
            settings,
            connectionFor: (setting) =>
                setting === 'AzureWebJobsStorage' ? host.connection : storageSetting(setting, settings),
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

        // Triggers the plugins host (the host serves HTTP, blob, queue, timer and durable triggers itself)
        const polling = options.queuePolling !== false;
        const hosted: HostedTrigger[] = [];
        // A failure after this point must still stop them before the plugins release their clients.
        cleanups.push(() => Promise.all(hosted.map((t) => t.stop())));
        for (const plugin of plugins) {
            for (const [type, hostTrigger] of Object.entries(plugin.triggers ?? {})) {
                for (const fn of ofType(type)) {
                    const trigger = await hostTrigger(fn, {
                        appRoot,
                        settings,
                        functions: all,
                        log,
                        durable: engine(),
                        polling,
                    });
                    hosted.push(trigger);
                    if (polling) trigger.start();
                }
            }
        }

        if (persistent && runtime) {
            const plan = await runtime.resume();
            log(
                `[durable] ${persistent.instances} saved instance(s) in ${persistent.container}: ` +
                    `${plan.ready.length} to run, ${plan.activities.length} activit(ies) run again, ` +
                    `${plan.timers.length} timer(s) armed, ${plan.children.length + plan.messages.length} link(s) repaired`,
            );
        }

        const functions = describeFunctions(all, { frontDoor, apiUrl, timers, settings, plugins });
        let stopping: Promise<{ abandonedInvocations: number }> | undefined;
        const stop = (): Promise<{ abandonedInvocations: number }> => {
            stopping ??= (async () => {
                const closing = frontDoor.stopListening();
                const drainBound = options.drainTimeoutMs ?? 30_000;
                const drainStarted = Date.now();
                await scanner.stop();
                await timers.stop();
                await Promise.all(queuePumps.map((p) => p.stop()));
                for (const plugin of plugins)
                    await plugin.drain?.(Math.max(0, drainBound - (Date.now() - drainStarted)));
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
