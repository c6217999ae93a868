import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HvrError } from '../../../../shared/errors';

/** The `Values` of local.settings.json, as `func start` reads them (empty when the file is absent). */
export function localSettingsValues(appRoot: string): Record<string, string> {
    const path = join(appRoot, 'local.settings.json');
    if (!existsSync(path)) return {};
    let parsed: unknown;
    try {
        parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
        throw new HvrError('CONFIG_MISSING', `${path} is not valid JSON: ${(err as Error).message}`);
    }
    const values = (parsed as { Values?: unknown }).Values;
    if (values === undefined) return {};
    if (typeof values !== 'object' || values === null || Array.isArray(values)) {
        throw new HvrError('CONFIG_MISSING', `${path}: "Values" must be an object of setting names to strings.`);
    }
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) {
        if (typeof value === 'string') out[name] = value;
        else if (typeof value === 'number' || typeof value === 'boolean') out[name] = String(value);
        else throw new HvrError('CONFIG_MISSING', `${path}: Values.${name} must be a string.`);
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
        throw new HvrError('CONFIG_MISSING', `${path} is not valid JSON: ${(err as Error).message}`);
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
            throw new HvrError(
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
