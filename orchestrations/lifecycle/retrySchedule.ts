import * as df from 'durable-functions';
import { scaledMs } from '../../shared/durableTime';
import { Failure, Outcome, retryDelay, transientFailure } from '../../shared/retry';

/** What the caller hears between attempts, to show the retry in the job and the custom status. */
export interface RetryNotice {
    attempt: number;
    failure: Failure;
    /** ISO 8601 instant of the next attempt. */
    nextAttemptAt: string;
}

/** The job task's detail line for an attempt that failed and will be tried again. */
export function retryDetail(notice: RetryNotice): string {
    const { attempt, failure, nextAttemptAt } = notice;
    return `Attempt ${attempt} failed (${failure.code}: ${failure.message}); next attempt at ${nextAttemptAt}.`;
}

/** The custom-status fragment that shows a pending retry. */
export function retryStatus(notice: RetryNotice): Failure & { attempt: number; nextAttemptAt: string } {
    return { ...notice.failure, attempt: notice.attempt, nextAttemptAt: notice.nextAttemptAt };
}

export interface RetryScheduleOptions {
    /** Give up (non-recoverable TIMEOUT) when the next attempt would start later than this after the first. */
    giveUpAfterMs?: number;
    /** Called before each wait; may return a task to run first (e.g. recording the retry on the job). */
    onRetry?: (notice: RetryNotice) => df.Task | undefined;
}

/** Recoverable failures are retried for 24 hours before the job fails. */
export const DEFAULT_GIVE_UP_AFTER_MS = 24 * 3600_000;

/**
 * Calls an activity that returns an Outcome, retrying recoverable failures (and thrown, transient ones) on the
 * schedule of `retryDelay` with durable timers: each attempt starts 1, 2, 4, 8, 10, then 30, 30, ... minutes after
 * the start of the previous one. A non-recoverable failure is returned at once.
 */
export function* callWithRetrySchedule<T>(
    context: df.OrchestrationContext,
    activity: df.RegisteredActivity,
    input: unknown,
    options: RetryScheduleOptions = {},
): Generator<df.Task, Outcome<T>, unknown> {
    const giveUpAfterMs = scaledMs(options.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS);
    const firstStart = context.df.currentUtcDateTime.getTime();
    for (let attempt = 1; ; attempt++) {
        const startedAt = context.df.currentUtcDateTime.getTime();
        let outcome: Outcome<T>;
        try {
            outcome = (yield activity(input)) as Outcome<T>;
        } catch (err) {
            outcome = transientFailure(err);
        }
        if (outcome.ok || !outcome.recoverable) return outcome;
        const nextAttempt = Math.max(startedAt + retryDelay(attempt), context.df.currentUtcDateTime.getTime());
        if (nextAttempt - firstStart > giveUpAfterMs) {
            return {
                ok: false,
                code: 'TIMEOUT',
                recoverable: false,
                message: `Gave up after ${attempt} attempts over ${Math.round((nextAttempt - firstStart) / 60_000)} minutes; last error ${outcome.code}: ${outcome.message}`,
            };
        }
        const notice: RetryNotice = { attempt, failure: outcome, nextAttemptAt: new Date(nextAttempt).toISOString() };
        const before = options.onRetry?.(notice);
        if (before) yield before;
        yield context.df.createTimer(new Date(nextAttempt));
    }
}
