import { HvrError } from './errors';

/** Reads a required setting once, failing with a message that names it. */
export function requireSetting(name: string, env: NodeJS.ProcessEnv = process.env): string {
    const value = env[name];
    if (value === undefined || value === '') {
        throw new HvrError('CONFIG_MISSING', `The app setting ${name} is not set; see local.settings.sample.json.`, {
            setting: name,
        });
    }
    return value;
}

export function optionalSetting(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
}

export function integerSetting(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
    const raw = optionalSetting(name, env);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) {
        throw new HvrError('CONFIG_MISSING', `The app setting ${name} must be a whole number ≥ 0, got "${raw}".`, {
            setting: name,
        });
    }
    return value;
}
