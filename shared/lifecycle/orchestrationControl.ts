import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { startOnce } from './durableClientErrors';

/** Starting and stopping other orchestrations from an activity (orchestrators cannot start independent ones). */
export interface OrchestrationControl {
    /** Starts `name` with `instanceId` unless an instance with that id is pending or running. */
    startIfNotRunning(
        context: InvocationContext,
        name: string,
        instanceId: string,
        input: unknown,
    ): Promise<'started' | 'alreadyRunning'>;
    /** Terminates the instance if it is pending or running. */
    terminateIfRunning(context: InvocationContext, instanceId: string, reason: string): Promise<boolean>;
}

const ACTIVE = new Set<string>([
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.ContinuedAsNew,
]);

/** The durable client of an activity that declared `extraInputs: [df.input.durableClient()]`. */
export const durableClientControl: OrchestrationControl = {
    async startIfNotRunning(context, name, instanceId, input) {
        const client = df.getClient(context);
        const status = await client.getStatus(instanceId).catch(() => undefined);
        if (status?.runtimeStatus !== undefined && ACTIVE.has(status.runtimeStatus)) return 'alreadyRunning';
        // Another starter can win between the status read and the start: that is 'alreadyRunning' too.
        return startOnce(client, name, instanceId, input);
    },
    async terminateIfRunning(context, instanceId, reason) {
        const client = df.getClient(context);
        const status = await client.getStatus(instanceId).catch(() => undefined);
        if (status?.runtimeStatus === undefined || !ACTIVE.has(status.runtimeStatus)) return false;
        await client.terminate(instanceId, reason);
        return true;
    },
};
