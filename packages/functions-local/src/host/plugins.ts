import type { Clock } from '../durable/clock';
import type { DurableClientSource } from '../durable/clientBinding';
import type { LocalEventSubscription } from './blobTriggers';
import type { RegisteredFunction } from './registry';

/** What a plugin sees while the host prepares: the app settings, still open to additions. */
export interface HostPluginPrepare {
    /** The app's folder (package.json, host.json, local.settings.json). */
    appRoot: string;
    /** The app settings the functions will see (UseDevelopmentStorage already expanded); a plugin may add some. */
    settings: Record<string, string>;
    /** The AzureWebJobsStorage connection string in use (the embedded Azurite's, or the one given). */
    storageConnectionString: string;
    /** The clock given to the host, if one was (tests): a plugin may hand it to the app. */
    clock?: Clock;
    log: (line: string) => void;
}

/** What a plugin sees once the settings apply, the app is loaded and storage answers. */
export interface HostPluginStart {
    appRoot: string;
    settings: Record<string, string>;
    functions: RegisteredFunction[];
    log: (line: string) => void;
}

/** What a plugin gets to host a function of a trigger type the host itself does not serve. */
export interface HostPluginTrigger extends HostPluginStart {
    /** The durable engine's own client (loopback URLs), for triggers that start or signal orchestrations. */
    durable: DurableClientSource;
    /** Whether the host polls (`queuePolling`): when false, the trigger is built but not started. */
    polling: boolean;
}

/** A trigger a plugin hosts: started with the host, stopped (settling what it holds) when it stops. */
export interface HostedTrigger {
    start(): void;
    stop(): Promise<void>;
}

/**
 * The app-specific part of a local host: what the app's own tools add to the generic host (its buses and
 * queues, the containers it expects, the Event Grid subscriptions its infra creates, triggers the host does
 * not serve itself). Every hook is optional; the host calls them in this order and `stop` last, also after a
 * failed start.
 */
export interface HostPlugin {
    /** Before the settings apply to the process: may add settings (a local broker's connection string). */
    prepare?(context: HostPluginPrepare): Promise<void>;
    /** Once storage answers, before any trigger runs. */
    start?(context: HostPluginStart): Promise<void>;
    /** The Event Grid subscriptions the blob scan emulates. */
    eventSubscriptions?(functions: RegisteredFunction[], settings: Record<string, string>): LocalEventSubscription[];
    /** Trigger types (compared without case) this plugin hosts, each with how to host one function. */
    triggers?: Record<string, (fn: RegisteredFunction, context: HostPluginTrigger) => Promise<HostedTrigger>>;
    /** The start-up line of a function whose trigger it hosts. */
    describe?(fn: RegisteredFunction, settings: Record<string, string>): string | undefined;
    /** While the host stops: stop the hosted triggers, each settling the message it holds, within `boundMs`. */
    drain?(boundMs: number): Promise<void>;
    /** Releases everything it started. */
    stop?(): Promise<void>;
}
