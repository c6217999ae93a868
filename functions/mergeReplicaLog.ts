import { app, InvocationContext, Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { errorCodeOf, ensureErrorType, HvrError } from '../shared/errors';
import { instanceIds, lifecycleEvents } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { REPLICA_LOGS_CONTAINER, parseLogBlobName } from '../shared/replica/logBlob';
import { MergeDeps, mergeSettingsFromEnv, mergeUploadedLog, sweepChainGaps } from '../shared/replica/mergeLog';
import { MergeNotifier } from '../shared/replica/notifier';
import { stateScope } from '../shared/state/protectedItems';

/**
 * Raises the merge's events to the VM's orchestrations through the durable client. An instance that does not
 * exist (not started yet, or finished) is not an error for the merge: the event is logged and dropped.
 */
export function durableMergeNotifier(context: InvocationContext): MergeNotifier {
    const client = df.getClient(context);
    const raise = async (targets: string[], event: string, payload: unknown): Promise<void> => {
        for (const instanceId of targets) {
            try {
                await client.raiseEvent(instanceId, event, payload);
            } catch (err) {
                context.log(`merge: ${event} not delivered to ${instanceId}: ${ensureErrorType(err).message}`);
            }
        }
    };
    const both = (vmId: string): string[] => [instanceIds.replicationMonitor(vmId), instanceIds.enableProtection(vmId)];
    return {
        logApplied: (e) => raise(both(e.vmId), lifecycleEvents.logApplied, e),
        cycleComplete: (e) => raise(both(e.vmId), lifecycleEvents.cycleComplete, e),
        // Both: a refused initial log keeps enable protection from completing, with the reason.
        resyncRequired: (e) => raise(both(e.vmId), lifecycleEvents.resyncRequired, e),
        mergeFailed: (e) => raise([instanceIds.replicationMonitor(e.vmId)], lifecycleEvents.mergeFailed, e),
    };
}

function mergeDeps(context: InvocationContext): MergeDeps {
    return {
        scope: stateScope(),
        notifier: durableMergeNotifier(context),
        clock: ports().clock,
        settings: mergeSettingsFromEnv(),
        log: (message, data) => context.log(message, ...(data ? [JSON.stringify(data)] : [])),
    };
}

/** The trigger's path is the blob name inside `replica-logs`. */
function logNameOf(context: InvocationContext): string {
    const name = context.triggerMetadata?.name;
    if (typeof name !== 'string' || name === '') {
        throw new HvrError('VALIDATION_FAILED', 'The blob trigger gave no blob name for the uploaded log.');
    }
    return name;
}

/**
 * An uploaded log: merge it (and the logs it unblocks). Expected outcomes are logged and complete the
 * invocation; a transient failure is reported to the VM's monitor and rethrown so the trigger retries.
 */
export async function mergeReplicaLog(_blob: unknown, context: InvocationContext): Promise<void> {
    const name = logNameOf(context);
    const deps = mergeDeps(context);
    try {
        const outcomes = await mergeUploadedLog(deps, name);
        for (const o of outcomes) context.log(`merge: ${o.name} → ${o.status}`, JSON.stringify(o));
    } catch (err) {
        const e = ensureErrorType(err);
        let vmId: string | undefined;
        let diskId: string | undefined;
        try {
            ({ vmId, diskId } = parseLogBlobName(name));
        } catch {
            // A bad name is quarantined inside the merge; nothing to report here.
        }
        if (vmId && diskId) {
            await deps.notifier.mergeFailed({
                vmId,
                diskId,
                code: errorCodeOf(err),
                message: e.message,
                recoverable: !(err instanceof HvrError) || err.recoverable,
                at: deps.clock.now().toISOString(),
            });
        }
        throw err;
    }
}

/** Every 5 minutes: logs waiting for a predecessor that never came break the chain after the gap timeout. */
export async function mergeGapSweep(_timer: Timer, context: InvocationContext): Promise<void> {
    const outcomes = await sweepChainGaps(mergeDeps(context));
    for (const o of outcomes) context.log(`merge sweep: ${o.name} → ${o.status}`);
}

app.storageBlob('mergeReplicaLog', {
    path: `${REPLICA_LOGS_CONTAINER}/{name}`,
    source: 'EventGrid',
    connection: 'REPLICA_STORAGE',
    extraInputs: [df.input.durableClient()],
    handler: mergeReplicaLog,
});

app.timer('mergeGapSweep', {
    schedule: '0 */5 * * * *',
    extraInputs: [df.input.durableClient()],
    handler: mergeGapSweep,
});
