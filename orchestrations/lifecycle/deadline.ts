import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { raiseIfPresent } from '../../shared/lifecycle/durableClientErrors';
import { lifecycleEvents } from '../../shared/lifecycle/instances';
import { ports } from '../../shared/ports';
import { RECORD_RETRY } from '../lifecycleActivities';

/**
 * A deadline held by its own instance: one durable timer, then `deadlineReached` raised to the instance that
 * asked for it. An orchestration that waits on events in rounds until a deadline cannot keep one timer itself:
 * durable-functions sends a timer yielded in a second `Task.any` as a new CreateTimer, and a round whose
 * `Task.any` leaves the timer out never ends when it fires on the real engine (docs/durable-runtime.md). Waiting
 * on the event instead, every round is events only, and the wait costs one timer whatever its rounds.
 */
export const EVENT_DEADLINE = 'eventDeadline';

export interface DeadlineInput {
    /** The instance that gets `deadlineReached`. */
    target: string;
    /** ISO 8601 instant the timer fires at. */
    fireAt: string;
    /** Handed back in the event, so the target can tell its deadlines apart. */
    key: string;
}

/** The payload of `deadlineReached`. */
export interface DeadlineReachedEvent {
    key: string;
    fireAt: string;
    /** The deadline instance's clock when it raised the event. */
    at: string;
}

/** Starts `instanceId` holding the deadline, unless it runs already (a replayed start). */
export async function startDeadline(
    input: { instanceId: string; deadline: DeadlineInput },
    context: InvocationContext,
): Promise<'started' | 'alreadyRunning'> {
    return ports().orchestrations.startIfNotRunning(context, EVENT_DEADLINE, input.instanceId, input.deadline);
}

export const startDeadlineActivity = df.app.activity('startDeadline', {
    extraInputs: [df.input.durableClient()],
    handler: (input: unknown, context: InvocationContext) =>
        startDeadline(input as { instanceId: string; deadline: DeadlineInput }, context),
});

/** Raises `deadlineReached` to the target; a target that is gone (or finished: the engine drops it) is no error. */
export async function raiseDeadline(
    input: { target: string; payload: DeadlineReachedEvent },
    context: InvocationContext,
): Promise<'raised' | 'instanceMissing'> {
    return raiseIfPresent(df.getClient(context), input.target, lifecycleEvents.deadlineReached, input.payload);
}

export const raiseDeadlineActivity = df.app.activity('raiseDeadline', {
    extraInputs: [df.input.durableClient()],
    handler: (input: unknown, context: InvocationContext) =>
        raiseDeadline(input as { target: string; payload: DeadlineReachedEvent }, context),
});

/** Ends a deadline no longer needed (its wait is over): the instance is terminated and its timer never raises. */
export async function cancelDeadline(input: { instanceId: string }, context: InvocationContext): Promise<boolean> {
    return ports().orchestrations.terminateIfRunning(context, input.instanceId, 'the wait it bounded is over');
}

export const cancelDeadlineActivity = df.app.activity('cancelDeadline', {
    extraInputs: [df.input.durableClient()],
    handler: (input: unknown, context: InvocationContext) => cancelDeadline(input as { instanceId: string }, context),
});

export function* eventDeadlineOrchestrator(context: df.OrchestrationContext): Generator<df.Task, string, unknown> {
    const input = context.df.getInput<DeadlineInput>();
    yield context.df.createTimer(new Date(input.fireAt));
    const payload: DeadlineReachedEvent = {
        key: input.key,
        fireAt: input.fireAt,
        at: context.df.currentUtcDateTime.toISOString(),
    };
    return (yield raiseDeadlineActivity({ target: input.target, payload }).withRetry(RECORD_RETRY)) as string;
}

df.app.orchestration(EVENT_DEADLINE, eventDeadlineOrchestrator);
