import { ServiceBusCommandReceiver } from '../../shared/bus/commandReceiver';
import { ServiceBusEventPublisher } from '../../shared/bus/eventPublisher';
import { PROVIDER_BUS_SETTING } from '../../shared/bus/providerEventsFromSetting';
import { PROVIDER_COMMANDS_QUEUE } from '../../shared/contracts/messages';
import { HvrError } from '../../shared/errors';
import { setPorts } from '../../shared/ports';
import { resetStorageConnections, storageConnection } from '../../shared/storage/connections';
import {
    resolveSettingReferences,
    serviceBusHostSettings,
    type HostedTrigger,
    type HostPlugin,
    type RegisteredFunction,
} from '../../packages/functions-local/src';
import { localEventSubscriptions } from './eventSubscriptions';
import { LocalProviderBus } from './localProviderBus';
import { ensureReplicaContainers } from './replicaContainers';
import {
    durableClientOf,
    providerCommandReceiver,
    serviceBusConfigured,
    ServiceBusClients,
} from './serviceBusReceivers';

/** The task hub of the local host when DURABLE_TASK_HUB is not set. */
export const LOCAL_TASK_HUB = 'hvrlocal';

/** This app's settings defaults: the replica storage on the host's storage, the local task hub. */
export function applyHvrDefaults(settings: Record<string, string>, storageConnectionString: string): void {
    settings.REPLICA_STORAGE ||= storageConnectionString;
    settings.DURABLE_TASK_HUB ||= LOCAL_TASK_HUB;
}

/** The provider channel's options of the local host (the local broker's mirror the infra's entities). */
export interface ProviderBusOptions {
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
}

/** The app's part of the local host, and what it started (the local broker when PROVIDER_BUS is empty). */
export interface HvrHostPlugin extends HostPlugin {
    readonly providerBus: LocalProviderBus | undefined;
}

/**
 * What this app adds to the local platform's host: the provider channel (the local broker when PROVIDER_BUS is
 * empty, the provider-events publisher, the provider-commands receiver), the replica containers, the replica-log
 * Event Grid subscription, and the app's ports (storage connections, the clock given to the host).
 */
export function hvrHostPlugin(options: ProviderBusOptions = {}): HvrHostPlugin {
    const releases: (() => unknown)[] = [];
    const receivers: ServiceBusCommandReceiver[] = [];
    let providerBus: LocalProviderBus | undefined;
    let busClients: ServiceBusClients | undefined;
    const clients = (): ServiceBusClients => {
        if (!busClients) throw new HvrError('INTERNAL', 'The provider channel is not started yet');
        return busClients;
    };

    return {
        get providerBus() {
            return providerBus;
        },

        async prepare({ settings, storageConnectionString, clock, log }) {
            applyHvrDefaults(settings, storageConnectionString);
            if (!serviceBusConfigured(settings, PROVIDER_BUS_SETTING)) {
                // As a namespace would: the app and providers reach it through PROVIDER_BUS, like any other.
                const started = await LocalProviderBus.start({
                    port: options.brokerPort,
                    maxMessageSizeBytes: options.maxMessageSizeBytes,
                    lockDurationMs: options.lockSeconds ? options.lockSeconds * 1000 : undefined,
                    commandMaxDeliveryCount: options.maxDeliveryCount,
                    duplicateDetectionWindowMs:
                        options.duplicateDetectionWindowSeconds === undefined
                            ? undefined
                            : options.duplicateDetectionWindowSeconds * 1000,
                    siteScanIntervalMs: options.siteScanIntervalMs,
                    log,
                });
                releases.push(() => started.stop());
                providerBus = started;
                settings[PROVIDER_BUS_SETTING] = started.connectionString;
            }
            // The app's storage connections are read from the settings the host applies next.
            resetStorageConnections();
            releases.push(resetStorageConnections);
            if (clock) releases.push(setPorts({ clock }));
        },

        async start({ appRoot, settings, log }) {
            // Before any trigger or provider runs: a write-only upload grant cannot create its container.
            const created = await ensureReplicaContainers(storageConnection('REPLICA_STORAGE', settings));
            if (created.length > 0) log(`Created blob containers: ${created.join(', ')}.`);
            busClients = new ServiceBusClients(settings);
            const opened = busClients;
            releases.push(() => opened.close());
            // The host owns this publisher (not the process-wide default) so stop() closes its connection.
            const busPublisher = new ServiceBusEventPublisher(busClients.get(PROVIDER_BUS_SETTING));
            const publisher = providerBus ? providerBus.publisher(busPublisher) : busPublisher;
            releases.push(setPorts({ providerEvents: () => publisher }));
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
        },

        eventSubscriptions: (functions, settings) => localEventSubscriptions(functions, settings),

        triggers: {
            // Provider messages: provider-commands from the namespace PROVIDER_BUS names (the local broker or Azure)
            serviceBusTrigger: async (fn, { appRoot, settings, log, durable }): Promise<HostedTrigger> => {
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
                    client: clients().get(connection),
                    durableClient: await durableClientOf(durable),
                    log,
                    settings: serviceBusHostSettings(appRoot),
                    receiveWaitMs: options.receiveWaitMs,
                    backoffMs: options.pollIntervalMs,
                });
                receivers.push(receiver);
                return receiver;
            },
        },

        describe: (fn: RegisteredFunction, settings) => {
            if (fn.trigger.type.toLowerCase() !== 'servicebustrigger') return undefined;
            const t = fn.trigger;
            return `queue ${String(t.queueName)}${t.isSessionsEnabled ? ' (sessions)' : ''} ${
                serviceBusConfigured(settings, String(t.connection))
                    ? `from Service Bus via ${String(t.connection)}${
                          providerBus && t.connection === PROVIDER_BUS_SETTING ? ' (the local broker)' : ''
                      } (shared command handler)`
                    : `not hosted: ${String(t.connection)} is not set`
            }`;
        },

        /**
         * Stops the Service Bus receivers: each finishes and settles the message it holds, bounded by `boundMs`;
         * past it the clients are closed, which ends a receive still waiting for a session (a lock not settled
         * then expires and the broker redelivers).
         */
        async drain(boundMs) {
            if (receivers.length === 0) return;
            const stopped = Promise.all(receivers.map((r) => r.stop()));
            let timer: NodeJS.Timeout | undefined;
            const bound = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), boundMs)));
            const outcome = await Promise.race([stopped.then(() => 'stopped' as const), bound]);
            clearTimeout(timer);
            if (outcome === 'timeout') await busClients?.close();
            await stopped;
        },

        async stop() {
            for (const release of releases.splice(0).reverse()) await release();
        },
    };
}
