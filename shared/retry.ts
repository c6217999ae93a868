import { scaledMs } from './durableTime';
import { ErrorCode, HvrError, errorCodeOf, ensureErrorType, isRecoverableCode } from './errors';

/**
 * The retry schedule of the reference architecture: after a recoverable failure the next attempt comes
 * 1, 2, 4, 8 and 10 minutes after the start of the previous one, then every 30 minutes for as long as the
 * error persists. Non-recoverable errors are never retried.
 */
export const RETRY_SCHEDULE_MINUTES: readonly number[] = [1, 2, 4, 8, 10];
export const RETRY_STEADY_MINUTES = 30;

/**
 * Milliseconds to wait before attempt `failedAttempts + 1`, measured from the start of the attempt that failed
 * (times the durable time scale, 1 outside tests).
 * `failedAttempts` is 1 after the first failure.
 */
export function retryDelay(failedAttempts: number): number {
    if (!Number.isInteger(failedAttempts) || failedAttempts < 1) {
        throw new HvrError('VALIDATION_FAILED', `retryDelay needs a failed-attempt count ≥ 1, got ${failedAttempts}.`);
    }
    const minutes = RETRY_SCHEDULE_MINUTES[failedAttempts - 1] ?? RETRY_STEADY_MINUTES;
    return scaledMs(minutes * 60_000);
}

/** The failure an activity reports as a value, because an error's class does not survive the trip to the orchestrator. */
export interface Failure {
    ok: false;
    code: ErrorCode;
    message: string;
    recoverable: boolean;
}

/** What an activity returns for an expected outcome; it throws only for transient faults. */
export type Outcome<T> = { ok: true; value: T } | Failure;

export function succeeded<T>(value: T): Outcome<T> {
    return { ok: true, value };
}

export function failed(code: ErrorCode, message: string): Failure {
    return { ok: false, code, message, recoverable: isRecoverableCode(code) };
}

/**
 * Runs an activity body and turns an HvrError into a Failure (non-recoverable ones and expected recoverable
 * ones alike). Anything else is rethrown: the orchestrator treats a thrown activity as transient.
 */
export async function outcomeOf<T>(body: () => Promise<T>): Promise<Outcome<T>> {
    try {
        return succeeded(await body());
    } catch (err) {
        if (err instanceof HvrError)
            return { ok: false, code: err.code, message: err.message, recoverable: err.recoverable };
        throw err;
    }
}

/** A thrown activity error as seen by the orchestrator: always recoverable, the class being lost on the way. */
export function transientFailure(err: unknown): Failure {
    const error = ensureErrorType(err);
    return { ok: false, code: errorCodeOf(err), message: error.message.trim(), recoverable: true };
}
