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
    providerEvents(): ProviderEventPublisher;
}

const defaults: Ports = {
    clock: systemClock,
    storage: () => sharedStorageConnection('REPLICA_STORAGE'),
    providerEvents: () => {
        throw new HvrError(
            'CONFIG_MISSING',
            'No provider event publisher is configured: set PROVIDER_BUS (or PROVIDER_BUS__fullyQualifiedNamespace).',
        );
    },
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

export function resetPorts(): void {
    current = { ...defaults };
}
