import { ProviderEventPublisher } from './contracts/publisher';
import { HvrError } from './errors';
import { sharedStorageConnection, StorageConnection } from './storage/connections';

/** Time for activities and handlers (orchestrators use context.df.currentUtcDateTime instead). */
export interface Clock {
    now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/**
 * What the app's functions and activities reach the world through. Production resolves each from app
 * settings on first use; tests and the local host replace any of them with `setPorts`.
 */
export interface Ports {
    clock: Clock;
    /** Storage for replica disks, uploaded logs and the state tables (setting REPLICA_STORAGE). */
    storage(): StorageConnection;
    /**
     * Where provider events go: in Azure the `provider-events` topic on the PROVIDER_BUS namespace (resolved on
     * first use, then kept); CONFIG_MISSING naming the setting when it is not configured.
     */
    providerEvents(): ProviderEventPublisher;
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

const defaults: Ports = {
    clock: systemClock,
    storage: () => sharedStorageConnection('REPLICA_STORAGE'),
    providerEvents: providerEventsFromSettings,
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
