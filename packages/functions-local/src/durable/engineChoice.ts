import { LocalPlatformError } from '../errors';

/**
 * The Durable engines the local host, the simulator and the orchestration tests can run on:
 * `embedded` is this package's runtime (in this process, virtual clock in tests); `dtfx` is the real Durable
 * Functions extension on its Azure Storage backend, in the .NET host of engines/dtfx.
 */
export const DURABLE_ENGINES = ['embedded', 'dtfx'] as const;
export type DurableEngineName = (typeof DURABLE_ENGINES)[number];

/** The environment variable that picks the engine where no `--durable` flag is given. */
export const DURABLE_ENGINE_SETTING = 'HVR_DURABLE';

/** What the local host needs of either engine. */
export interface DurableEngineHandle {
    /** The value of a `durableClient` input binding. */
    clientBinding(): Promise<unknown>;
    /** Where the front door forwards `/runtime/webhooks/durabletask/...`. */
    readonly httpOrigin: string | undefined;
    close(): Promise<void>;
}

/** Reads an engine name; `from` says where it came from, for the error. */
export function parseDurableEngine(value: string, from: string): DurableEngineName {
    const name = value.trim().toLowerCase();
    if ((DURABLE_ENGINES as readonly string[]).includes(name)) return name as DurableEngineName;
    throw new LocalPlatformError(
        'VALIDATION_FAILED',
        `${from} must be one of ${DURABLE_ENGINES.join(', ')}; got "${value}"`,
        {
            setting: from,
        },
    );
}

/** The engine an explicit choice or else HVR_DURABLE names; `embedded` when neither is given. */
export function durableEngineOf(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): DurableEngineName {
    if (explicit !== undefined) return parseDurableEngine(explicit, '--durable');
    const fromEnv = env[DURABLE_ENGINE_SETTING];
    return fromEnv ? parseDurableEngine(fromEnv, DURABLE_ENGINE_SETTING) : 'embedded';
}
