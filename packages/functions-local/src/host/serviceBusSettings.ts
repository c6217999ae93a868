import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { LocalPlatformError } from '../errors';

/**
 * host.json's `extensions.serviceBus` as the Service Bus extension 5.x reads it (bundle [4.*, 5.0.0)): flat
 * names, with the extension's defaults (ServiceBusOptions in azure-sdk-for-net,
 * sdk/servicebus/Microsoft.Azure.WebJobs.Extensions.ServiceBus). The 4.x `messageHandlerOptions` and
 * `sessionHandlerOptions` are ignored by that extension, and so they are here (with a notice naming them).
 */
export interface ServiceBusHostSettings {
    /** Complete on return, abandon on a failure; false leaves settlement to the function. Default true. */
    autoCompleteMessages: boolean;
    /** Messages handled at once per non-session trigger. Default 16 × cores. */
    maxConcurrentCalls: number;
    /** Sessions handled at once per session trigger. Default 8. */
    maxConcurrentSessions: number;
    /** Messages fetched ahead of the function. Default 0 (none). */
    prefetchCount: number;
    /** How long locks are renewed while a function runs. Default 5 min. */
    maxAutoLockRenewalDurationMs: number;
    /** Names in the section that 5.x does not read. */
    ignored: string[];
}

const KNOWN_5X = new Set([
    'autoCompleteMessages',
    'maxConcurrentCalls',
    'maxConcurrentSessions',
    'maxConcurrentCallsPerSession',
    'prefetchCount',
    'maxAutoLockRenewalDuration',
    'maxMessageBatchSize',
    'minMessageBatchSize',
    'maxBatchWaitTime',
    'sessionIdleTimeout',
    'enableCrossEntityTransactions',
    'transportType',
    'webProxy',
    'clientRetryOptions',
]);

/** A .NET TimeSpan in host.json ("00:05:00", "1.02:00:00") in milliseconds. */
export function timeSpanMs(value: string): number | undefined {
    const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$/.exec(value.trim());
    if (!match) return undefined;
    const [, days, hours, minutes, seconds, fraction] = match;
    const ms = Number(`0.${fraction ?? '0'}`) * 1000;
    return (((Number(days ?? 0) * 24 + Number(hours)) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000 + ms;
}

function read(path: string): Record<string, unknown> {
    if (!existsSync(path)) return {};
    let parsed: unknown;
    try {
        parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
        throw new LocalPlatformError('CONFIG_MISSING', `${path} is not valid JSON: ${(err as Error).message}`);
    }
    const section = (parsed as { extensions?: { serviceBus?: unknown } } | null)?.extensions?.serviceBus;
    return section && typeof section === 'object' && !Array.isArray(section)
        ? (section as Record<string, unknown>)
        : {};
}

export function serviceBusHostSettings(appRoot: string): ServiceBusHostSettings {
    const path = join(appRoot, 'host.json');
    const section = read(path);
    const wrong = (name: string, expected: string): never => {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `${path}: extensions.serviceBus.${name} must be ${expected} (got ${JSON.stringify(section[name])}).`,
        );
    };
    const flag = (name: string, fallback: boolean): boolean => {
        const value = section[name];
        if (value === undefined) return fallback;
        return typeof value === 'boolean' ? value : wrong(name, 'true or false');
    };
    const count = (name: string, fallback: number, min: number): number => {
        const value = section[name];
        if (value === undefined) return fallback;
        return Number.isInteger(value) && (value as number) >= min
            ? (value as number)
            : wrong(name, `an integer ≥ ${min}`);
    };
    const renewal = section.maxAutoLockRenewalDuration;
    let maxAutoLockRenewalDurationMs = 5 * 60_000;
    if (renewal !== undefined) {
        const ms = typeof renewal === 'string' ? timeSpanMs(renewal) : undefined;
        maxAutoLockRenewalDurationMs = ms ?? wrong('maxAutoLockRenewalDuration', 'a time span such as "00:05:00"');
    }
    return {
        autoCompleteMessages: flag('autoCompleteMessages', true),
        maxConcurrentCalls: count('maxConcurrentCalls', 16 * Math.max(1, cpus().length), 1),
        maxConcurrentSessions: count('maxConcurrentSessions', 8, 1),
        prefetchCount: count('prefetchCount', 0, 0),
        maxAutoLockRenewalDurationMs,
        ignored: Object.keys(section).filter((name) => !KNOWN_5X.has(name)),
    };
}
