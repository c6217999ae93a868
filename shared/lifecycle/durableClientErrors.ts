/**
 * How the durable client reports the two answers the app expects when it starts or signals an instance by its
 * deterministic id. One place, because the engines word them differently.
 */

/** `raiseEvent`/`terminate` of the durable client on a 404: the instance does not exist. */
export function isInstanceMissing(err: unknown): boolean {
    return err instanceof Error && /^No instance with ID '.*' found\.$/.test(err.message);
}

/**
 * `startNew` of an instance id that already runs. The embedded runtime answers 409; the extension's HTTP start API
 * maps only argument and JSON errors, so the backend's "already exists" comes back as an HTTP 500 whose details
 * carry the message. The client turns both into "The operation failed with an unexpected status code: N.
 * Details: …"; our own CONFLICT errors say "already exists" too.
 */
export function isAlreadyExists(err: unknown): boolean {
    if (!(err instanceof Error)) return false;
    const message = err.message;
    if (/unexpected status code: 409\b/.test(message)) return true;
    if ((err as { code?: unknown }).code === 'CONFLICT' && /already exists/i.test(message)) return true;
    return (
        /unexpected status code: 5\d\d\b/.test(message) &&
        /already (exists|running)|OrchestrationAlreadyExists/i.test(message)
    );
}

/**
 * Starts an orchestration under a deterministic id once: 'alreadyRunning' when an instance with that id is
 * Pending/Running (a repeated command), however the engine reports it.
 */
export async function startOnce(
    client: { startNew(name: string, options: { instanceId: string; input?: unknown }): Promise<string> },
    name: string,
    instanceId: string,
    input: unknown,
): Promise<'started' | 'alreadyRunning'> {
    try {
        await client.startNew(name, { instanceId, input });
        return 'started';
    } catch (err) {
        if (isAlreadyExists(err)) return 'alreadyRunning';
        throw err;
    }
}

/**
 * Raises `name` to `instanceId` whatever its transient status (Pending, Running, ContinuedAsNew): only a missing
 * instance is an answer ('instanceMissing'); a finished one drops the event (410), as the backend does.
 */
export async function raiseIfPresent(
    client: { raiseEvent(instanceId: string, eventName: string, eventData: unknown): Promise<void> },
    instanceId: string,
    name: string,
    payload: unknown,
): Promise<'raised' | 'instanceMissing'> {
    try {
        await client.raiseEvent(instanceId, name, payload);
        return 'raised';
    } catch (err) {
        if (isInstanceMissing(err)) return 'instanceMissing';
        throw err;
    }
}
