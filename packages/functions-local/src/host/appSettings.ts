import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalPlatformError } from '../errors';
import { connectionFromString, type StorageConnection } from '../storage';

/** The `Values` of local.settings.json, as `func start` reads them (empty when the file is absent). */
export function localSettingsValues(appRoot: string): Record<string, string> {
    const path = join(appRoot, 'local.settings.json');
    if (!existsSync(path)) return {};
    let parsed: unknown;
    try {
        parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
        throw new LocalPlatformError('CONFIG_MISSING', `${path} is not valid JSON: ${(err as Error).message}`);
    }
    const values = (parsed as { Values?: unknown }).Values;
    if (values === undefined) return {};
    if (typeof values !== 'object' || values === null || Array.isArray(values)) {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `${path}: "Values" must be an object of setting names to strings.`,
        );
    }
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) {
        if (typeof value === 'string') out[name] = value;
        else if (typeof value === 'number' || typeof value === 'boolean') out[name] = String(value);
        else throw new LocalPlatformError('CONFIG_MISSING', `${path}: Values.${name} must be a string.`);
    }
    return out;
}

/** host.json's `extensions.http.routePrefix`, `api` by default (as the Functions host). */
export function routePrefixOf(appRoot: string): string {
    const path = join(appRoot, 'host.json');
    if (!existsSync(path)) return 'api';
    try {
        const hostJson = JSON.parse(readFileSync(path, 'utf8')) as {
            extensions?: { http?: { routePrefix?: unknown } };
        };
        const prefix = hostJson.extensions?.http?.routePrefix;
        return typeof prefix === 'string' ? prefix : 'api';
    } catch (err) {
        throw new LocalPlatformError('CONFIG_MISSING', `${path} is not valid JSON: ${(err as Error).message}`);
    }
}

/**
 * Applies app settings to `process.env` (the functions read their settings there, as in Azure) and
 * returns a function that puts the previous values back.
 */
export function applySettings(settings: Record<string, string>): () => void {
    const previous = new Map<string, string | undefined>();
    for (const [name, value] of Object.entries(settings)) {
        previous.set(name, process.env[name]);
        process.env[name] = value;
    }
    return () => {
        for (const [name, value] of previous) {
            if (value === undefined) delete process.env[name];
            else process.env[name] = value;
        }
    };
}

/**
 * Resolves `%NAME%` app-setting references in a binding property (a blob path, a queue name, a schedule),
 * as the Functions host does when it loads bindings.
 */
export function resolveSettingReferences(value: string, settings: Record<string, string | undefined>): string {
    return value.replace(/%([^%]+)%/g, (_match, name: string) => {
        const resolved = settings[name];
        if (resolved === undefined || resolved === '') {
            throw new LocalPlatformError(
                'CONFIG_MISSING',
                `A binding refers to app setting ${name} (in "${value}"), which is not set.`,
                {
                    setting: name,
                },
            );
        }
        return resolved;
    });
}

/**
 * The app settings, as `func start` assembles them: local.settings.json `Values`, overridden by the
 * environment, then by explicit settings. With the embedded Azurite, every `UseDevelopmentStorage=true`
 * points at it, and AzureWebJobsStorage defaults to it. Plugins may add settings before `applyDefaults`.
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
    // Validate early: a bad connection string should fail at start, not on the first blob.
    connectionFromString(storageConnectionString);
    return settings;
}

/** The task hub when DURABLE_TASK_HUB is not set. */
export const DEFAULT_TASK_HUB = 'localtaskhub';

/** The settings the host needs that nothing set: the task hub and the worker runtime. */
export function applyDefaults(settings: Record<string, string>): void {
    settings.DURABLE_TASK_HUB ||= DEFAULT_TASK_HUB;
    settings.FUNCTIONS_WORKER_RUNTIME ||= 'node';
}

/** The storage account a connection setting names; locally it must hold a connection string (Azurite). */
export function storageSetting(setting: string, settings: Record<string, string | undefined>): StorageConnection {
    const cs = settings[setting];
    if (!cs) {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `No storage connection "${setting}": locally it must hold a connection string (Azurite); ` +
                'identity-based connections work only in Azure.',
            { setting },
        );
    }
    return connectionFromString(cs);
}
