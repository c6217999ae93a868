import {
    applyDefaults,
    resolveSettings as resolvePlatformSettings,
    startLocalHost as startPlatformHost,
    type LocalHost as PlatformHost,
    type LocalHostOptions as PlatformHostOptions,
} from '../../packages/functions-local/src';
import { applyHvrDefaults, hvrHostPlugin, type ProviderBusOptions } from './hvrPlugin';
import type { LocalProviderBus } from './localProviderBus';

export { hvrHostPlugin, LOCAL_TASK_HUB, type HvrHostPlugin, type ProviderBusOptions } from './hvrPlugin';
export { LocalProviderBus } from './localProviderBus';

/** The local platform's host options, and the provider channel's. */
export interface LocalHostOptions extends PlatformHostOptions {
    serviceBus?: ProviderBusOptions;
}

export interface LocalHost extends PlatformHost {
    /**
     * The local Service Bus serving the provider channel, started when PROVIDER_BUS is empty; absent when it
     * names a namespace. Either way the app's PROVIDER_BUS setting is the connection string providers use.
     */
    providerBus?: LocalProviderBus;
}

/** The local platform's host with this app's plugin registered (`hvr start`, the simulator, the tests). */
export async function startLocalHost(options: LocalHostOptions = {}): Promise<LocalHost> {
    const { serviceBus, plugins = [], ...rest } = options;
    const plugin = hvrHostPlugin(serviceBus);
    const host = await startPlatformHost({ ...rest, plugins: [plugin, ...plugins] });
    return { ...host, providerBus: plugin.providerBus };
}

/**
 * The settings the host with this app's plugin gives the functions: the platform's (local.settings.json, the
 * environment, explicit ones) with REPLICA_STORAGE on the host's storage and the local task hub by default.
 */
export function resolveSettings(
    appRoot: string,
    storageConnectionString: string,
    embeddedAzurite: boolean,
    explicit: Record<string, string> = {},
): Record<string, string> {
    const settings = resolvePlatformSettings(appRoot, storageConnectionString, embeddedAzurite, explicit);
    applyHvrDefaults(settings, storageConnectionString);
    applyDefaults(settings);
    return settings;
}
