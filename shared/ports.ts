import { optionalSetting } from './config';
import { ProviderEventPublisher } from './contracts/publisher';
import { HvrError } from './errors';
import { durableClientControl, OrchestrationControl } from './lifecycle/orchestrationControl';
import { logMetricSink, MetricSink } from './metrics';
import type { ReplicaPort } from './replica/replicaPort';
import type { StateScope } from './state/protectedItems';
import { sharedStorageConnection, StorageConnection } from './storage/connections';

/** Time for activities and handlers (orchestrators use context.df.currentUtcDateTime instead). */
export interface Clock {
    now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * What the app's functions and activities reach the world through: the one registry of them. Production resolves
 * each from app settings on first use; tests and the local host replace any of them with `setPorts`.
 */
export interface Ports {
    clock: Clock;
    /** Storage for replica disks, uploaded logs and the state tables (setting REPLICA_STORAGE). */
    storage(): StorageConnection;
    /** Where the lifecycle tables live: `storage()` and the optional setting STATE_TABLE_PREFIX. */
    state(): StateScope;
    /**
     * Where provider events go: in Azure the `provider-events` topic on the PROVIDER_BUS namespace (resolved on
     * first use, then kept); CONFIG_MISSING naming the setting when it is not configured.
     */
    providerEvents(): ProviderEventPublisher;
    /** The replica side of a replication relationship: replica disks over `state()` (shared/replica/replicaPort.ts). */
    replicas(): ReplicaPort;
    /** Starting and stopping other orchestrations from an activity: the activity's durable client. */
    orchestrations: OrchestrationControl;
    /** Where replication metrics go: structured log lines. */
    metrics: MetricSink;
}

type BusFactory = typeof import('./bus/providerEventsFromSetting');

/** Made on first use and kept for the process: one client, one AMQP connection, reused by every activity. */
let busPublisher: ProviderEventPublisher | undefined;

function providerEventsFromSettings(): ProviderEventPublisher {
    if (busPublisher) return busPublisher;
    // Required here, not imported: most modules that import ports never publish, and the Service Bus SDK is
    // only loaded by those that do (and shared/bus may import what imports ports without a cycle).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const bus = require('./bus/providerEventsFromSetting') as BusFactory;
    const { providerEventsFromSetting, PROVIDER_BUS_SETTING } = bus;
    busPublisher = providerEventsFromSetting();
    if (!busPublisher) {
        throw new HvrError(
            'CONFIG_MISSING',
            `No provider event publisher is configured: set ${PROVIDER_BUS_SETTING} to a Service Bus connection ` +
                `string, or ${PROVIDER_BUS_SETTING}__fullyQualifiedNamespace (with a managed identity).`,
            { setting: PROVIDER_BUS_SETTING },
        );
    }
    return busPublisher;
}

function stateFromSettings(): StateScope {
    const tablePrefix = optionalSetting('STATE_TABLE_PREFIX') ?? '';
    if (!/^[A-Za-z0-9]*$/.test(tablePrefix)) {
        throw new HvrError('CONFIG_MISSING', `STATE_TABLE_PREFIX must be letters and digits, got "${tablePrefix}".`);
    }
    return { conn: current.storage(), tablePrefix };
}

type ReplicaAdapter = typeof import('./replica/replicaPort');

function storageReplicas(): ReplicaPort {
    // Required on use, not imported: the replica adapter reads the state tables, whose module reads the ports.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { storageReplicaPort } = require('./replica/replicaPort') as ReplicaAdapter;
    return storageReplicaPort(() => current.state());
}

const defaults: Ports = {
    clock: systemClock,
    storage: () => sharedStorageConnection('REPLICA_STORAGE'),
    state: stateFromSettings,
    providerEvents: providerEventsFromSettings,
    replicas: storageReplicas,
    orchestrations: durableClientControl,
    metrics: logMetricSink,
};

let current: Ports = { ...defaults };

export function ports(): Ports {
    return current;
}

/** Replaces some ports (tests, the local host, app start-up wiring). Returns a function that restores the old ones. */
export function setPorts(overrides: Partial<Ports>): () => void {
    const previous = current;
    current = { ...current, ...overrides };
    return () => {
        current = previous;
    };
}

/** Restores the production ports and forgets the provider bus publisher, so changed settings are read again. */
export function resetPorts(): void {
    busPublisher = undefined;
    current = { ...defaults };
}
