import { app, InvocationContext, Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { errorCodeOf, ensureErrorType, HvrError } from '../shared/errors';
import { instanceIds, lifecycleEvents } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { REPLICA_LOGS_CONTAINER, parseLogBlobName } from '../shared/replica/logBlob';
import {
    enqueueContinuation,
    logEventsQueue,
    parseLogEvent,
    REPLICA_LOG_EVENTS_QUEUE,
    REPLICA_STORAGE_SETTING,
} from '../shared/replica/logEvents';
import {
    MergeDeps,
    MergeOutcome,
    mergeSettingsFromEnv,
    mergeUploadedLog,
    sweepChainGaps,
    timeBudget,
} from '../shared/replica/mergeLog';
import { MergeNotifier } from '../shared/replica/notifier';
import { getPolicy } from '../shared/state/policies';
import { getProtectedItem, StateScope, stateScope } from '../shared/state/protectedItems';
import { retentionOfVm, snapshotImmutabilityFromEnv } from '../shared/replica/vmRetention';

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

/** The copy frequency of the VM's policy (the chain-gap wait follows it); undefined when either is gone. */
async function copyFrequencyOf(scope: StateScope, vmId: string): Promise<number | undefined> {
    const item = await getProtectedItem(scope, vmId);
    if (!item) return undefined;
    return (await getPolicy(scope, item.policyName))?.copyFrequencySeconds;
}

function mergeDeps(context: InvocationContext): MergeDeps {
    const settings = mergeSettingsFromEnv();
    const scope = stateScope();
    return {
        scope,
        retentionFor: (vmId) => retentionOfVm(scope, vmId),
        immutability: snapshotImmutabilityFromEnv(),
        notifier: durableMergeNotifier(context),
        clock: ports().clock,
        settings,
        // The budget starts with the invocation: it ends well before the function timeout.
        budget: timeBudget(settings.timeBudgetSeconds),
        copyFrequencyFor: (vmId) => copyFrequencyOf(scope, vmId),
        log: (message, data) => context.log(message, ...(data ? [JSON.stringify(data)] : [])),
    };
}

/** How each outcome reads in the log: expected situations are said as such, never as failures. */
function describeOutcome(o: MergeOutcome): string {
    switch (o.status) {
        case 'applied':
            return `merge: ${o.name} → applied as log ${o.sequence}`;
        case 'continuing':
            return `merge: ${o.name} → ${o.stepsDone} of ${o.steps} steps written; a continuation carries on`;
        case 'finished':
            return `merge: ${o.name} → finished (an earlier try had written it)`;
        case 'duplicate':
            return `merge: ${o.name} → already applied (log ${o.sequence}); removed`;
        case 'gone':
            return `merge: ${o.name} → already merged and removed by an earlier merge; nothing to do`;
        case 'waiting':
            return `merge: ${o.name} → waits for log ${o.appliedSequence + 1}`;
        case 'quarantined':
            return `merge: ${o.name} → quarantined (${o.reason}, ${o.code})`;
        case 'stale':
            return `merge: ${o.name} → stopped: ${o.detail}`;
    }
}

/**
 * A message of queue \`replica-log-events\`: an Event Grid BlobCreated event of an uploaded log, or our
 * continuation of a log whose previous budget ran out. Merges the log (and the logs it unblocks) within the
 * time budget; a log left \`continuing\` gets a continuation message. Expected outcomes are logged and complete
 * the message; a transient failure is reported to the VM's monitor and rethrown, so the queue retries it
 * (host.json \`queues\`: visibilityTimeout between tries, poison queue after maxDequeueCount).
 */
export async function mergeReplicaLog(message: unknown, context: InvocationContext): Promise<void> {
    const request = parseLogEvent(message);
    if (request.kind === 'ignore') {
        context.log(`merge: message ${JSON.stringify(context.triggerMetadata?.id ?? null)} ignored: ${request.why}`);
        return;
    }
    const name = request.blobName;
    const deps = mergeDeps(context);
    try {
        const outcomes = await mergeUploadedLog(deps, name);
        for (const o of outcomes) {
            context.log(describeOutcome(o), JSON.stringify(o));
            if (o.status === 'continuing') {
                const blob = deps.scope.conn.blob.getContainerClient(REPLICA_LOGS_CONTAINER).getBlobClient(o.name);
                await enqueueContinuation(logEventsQueue(), {
                    blobName: o.name,
                    url: blob.url,
                    stepsDone: o.stepsDone,
                    at: deps.clock.now(),
                });
            }
        }
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

/**
 * Every 30 seconds: re-decides the logs waiting for a predecessor, so a gap is judged even when no later upload
 * comes (shared/replica/chainGap.ts: the missing log breaks the chain once it is known lost).
 */
export async function mergeGapSweep(_timer: Timer, context: InvocationContext): Promise<void> {
    const outcomes = await sweepChainGaps(mergeDeps(context));
    for (const o of outcomes) context.log(`merge sweep: ${describeOutcome(o)}`);
}

/** The sweep's NCRONTAB schedule: a fraction of the shortest copy frequency (30 s). */
export const MERGE_GAP_SWEEP_SCHEDULE = '*/30 * * * * *';

// No trigger binds the log's content: the message carries the event, the merge reads the log with ranged reads.
app.storageQueue('mergeReplicaLog', {
    queueName: REPLICA_LOG_EVENTS_QUEUE,
    connection: REPLICA_STORAGE_SETTING,
    extraInputs: [df.input.durableClient()],
    handler: mergeReplicaLog,
});

app.timer('mergeGapSweep', {
    schedule: MERGE_GAP_SWEEP_SCHEDULE,
    extraInputs: [df.input.durableClient()],
    handler: mergeGapSweep,
});
