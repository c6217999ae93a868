import * as df from 'durable-functions';
import { OutgoingProviderEvent } from '../shared/contracts/publisher';
import { checkFailoverPrerequisites, DrillRequest } from '../shared/failover/drillSteps';
import { finalRecoveryPointStatus, FinalPointStatus } from '../shared/failover/plannedFailover';
import { scaledMs } from '../shared/durableTime';
import { FailoverShutdownEvent, lifecycleEvents } from '../shared/lifecycle/instances';
import { Failure } from '../shared/retry';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { sendProviderEventActivity } from './lifecycleActivities';
import { recordStep } from './testFailover';

/**
 * The steps a planned failover runs before the ones it shares with an unplanned one: check the prerequisites,
 * have the provider shut the VM down and ship its final cycle (ShutdownForFailover → FailoverShutdownCompleted),
 * and wait for that cycle's recovery point. Replication keeps running until then, so a failover given up here
 * (CancelFailoverShutdown) leaves the VM running on premises and protected, with nothing created in Azure.
 */
export const PLANNED_FAILOVER_TASKS = [
    'Prerequisites check for planned failover',
    'Shutting down the virtual machine',
    'Synchronizing the latest data',
    'Stopping replication',
    'Preparing the failover disks',
    'Creating the virtual machine in Azure',
] as const;

/** Time between two looks for the final cycle's recovery point (the merge applies a log within seconds). */
export const FINAL_POINT_POLL_MS = 5_000;

export const checkFailoverPrerequisitesActivity = df.app.activity('checkFailoverPrerequisites', {
    handler: (input: unknown) => checkFailoverPrerequisites(input as DrillRequest),
});
export const finalRecoveryPointStatusActivity = df.app.activity('finalRecoveryPointStatus', {
    handler: (input: unknown) => finalRecoveryPointStatus(input as FailoverShutdownEvent),
});

export interface PlannedFailoverContext {
    vmId: string;
    siteId: string;
    jobId: string;
    drillId: string;
    shutdownTimeoutSeconds: number;
}

/** What the pre-shutdown steps end with: the final point, or the task that failed (cancel already sent). */
export type ShutdownOutcome =
    | { ok: true; recoveryPointId: string; capturedAt: string; shutDownAt: string }
    | { ok: false; task: string; failure: Failure };

function shutdownEvent(p: PlannedFailoverContext, respondBy: string): OutgoingProviderEvent {
    return {
        type: 'ShutdownForFailover',
        siteId: p.siteId,
        vmId: p.vmId,
        messageId: `ShutdownForFailover:${p.vmId}:${p.jobId}`,
        payload: {
            vmId: p.vmId,
            failoverId: p.drillId,
            respondBy,
            reason: `Planned failover to Azure (job ${p.jobId}).`,
        },
    };
}

function cancelEvent(p: PlannedFailoverContext, reason: string): OutgoingProviderEvent {
    return {
        type: 'CancelFailoverShutdown',
        siteId: p.siteId,
        vmId: p.vmId,
        messageId: `CancelFailoverShutdown:${p.vmId}:${p.jobId}`,
        payload: { vmId: p.vmId, failoverId: p.drillId, reason: reason.slice(0, 256) },
    };
}

/**
 * Prerequisites, shutdown and final sync. Every failure here sends CancelFailoverShutdown (the provider starts
 * the VM again if it had shut it down) before returning.
 */
export function* shutDownAndSynchronize(
    context: df.OrchestrationContext,
    p: PlannedFailoverContext,
    request: DrillRequest,
): Generator<df.Task, ShutdownOutcome, unknown> {
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const [prerequisites, shutdown, synchronizing] = PLANNED_FAILOVER_TASKS;
    const { vmId, jobId } = p;
    // The provider timeout is scaled like every other (HVR_DURABLE_TIME_SCALE; 1 outside tests).
    const timeoutMs = scaledMs(p.shutdownTimeoutSeconds * 1000);

    yield* recordStep(context, { vmId, jobId, jobChanges: [{ type: 'taskStarted', task: prerequisites, at: now() }] });
    const checked = yield* callWithRetrySchedule<{ recoveryPointId: string }>(
        context,
        checkFailoverPrerequisitesActivity,
        request,
    );
    // Nothing was asked of the provider yet: no cancel needed.
    if (!checked.ok) return { ok: false, task: prerequisites, failure: checked };

    const respondBy = new Date(context.df.currentUtcDateTime.getTime() + timeoutMs);
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            { type: 'taskSucceeded', task: prerequisites, at: now() },
            {
                type: 'taskStarted',
                task: shutdown,
                at: now(),
                detail: `Waiting until ${respondBy.toISOString()} for the provider to shut the VM down and ship its final cycle`,
            },
        ],
    });
    const cancel = function* (task: string, failure: Failure): Generator<df.Task, ShutdownOutcome, unknown> {
        // Best effort, bounded: the provider also gives up by itself at respondBy.
        yield* callWithRetrySchedule<null>(context, sendProviderEventActivity, cancelEvent(p, failure.message), {
            giveUpAfterMs: timeoutMs,
        });
        return {
            ok: false,
            task,
            failure: {
                ...failure,
                message: `${failure.message} CancelFailoverShutdown sent: the VM keeps running on premises and stays protected.`,
            },
        };
    };

    const sent = yield* callWithRetrySchedule<null>(
        context,
        sendProviderEventActivity,
        shutdownEvent(p, respondBy.toISOString()),
        { giveUpAfterMs: timeoutMs },
    );
    if (!sent.ok) return yield* cancel(shutdown, sent);

    let confirmed: FailoverShutdownEvent | undefined;
    while (confirmed === undefined) {
        // Fresh tasks every round (see enableProtection): a confirmation of another failover is skipped.
        const timer = context.df.createTimer(respondBy);
        const confirmation = context.df.waitForExternalEvent(lifecycleEvents.failoverShutdownCompleted);
        const winner = (yield context.df.Task.any([confirmation, timer])) as df.Task;
        if (winner === timer) {
            return yield* cancel(shutdown, {
                ok: false,
                code: 'TIMEOUT',
                recoverable: false,
                message:
                    `The provider did not confirm the shutdown of VM ${vmId} within ${p.shutdownTimeoutSeconds} s ` +
                    '(PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS).',
            });
        }
        timer.cancel();
        const event = confirmation.result as FailoverShutdownEvent;
        if (event.failoverId === p.drillId) confirmed = event;
    }

    const syncUntil = context.df.currentUtcDateTime.getTime() + timeoutMs;
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            {
                type: 'taskSucceeded',
                task: shutdown,
                at: now(),
                detail: `Shut down at ${confirmed.shutDownAt}; final cycle ${confirmed.cycleId} shipped`,
            },
            {
                type: 'taskStarted',
                task: synchronizing,
                at: now(),
                detail: `Applying final cycle ${confirmed.cycleId}`,
            },
        ],
    });
    for (;;) {
        const status = yield* callWithRetrySchedule<FinalPointStatus>(
            context,
            finalRecoveryPointStatusActivity,
            confirmed,
            { giveUpAfterMs: timeoutMs },
        );
        if (!status.ok) return yield* cancel(synchronizing, status);
        if (status.value.ready) {
            yield* recordStep(context, {
                vmId,
                jobId,
                jobChanges: [
                    {
                        type: 'taskSucceeded',
                        task: synchronizing,
                        at: now(),
                        detail: `Final recovery point ${status.value.recoveryPointId} (captured ${status.value.capturedAt})`,
                    },
                ],
            });
            return {
                ok: true,
                recoveryPointId: status.value.recoveryPointId,
                capturedAt: status.value.capturedAt,
                shutDownAt: confirmed.shutDownAt,
            };
        }
        const next = context.df.currentUtcDateTime.getTime() + scaledMs(FINAL_POINT_POLL_MS);
        if (next > syncUntil) {
            return yield* cancel(synchronizing, {
                ok: false,
                code: 'TIMEOUT',
                recoverable: false,
                message:
                    `The final cycle ${confirmed.cycleId} of VM ${vmId} was not applied within ` +
                    `${p.shutdownTimeoutSeconds} s (${status.value.detail}).`,
            });
        }
        yield context.df.createTimer(new Date(next));
    }
}
