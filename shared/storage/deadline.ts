import { integerSetting } from '../config';

/** The default bound on any single storage or bus call. A hung socket must never hang a function. */
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

export function callTimeoutMs(): number {
    return integerSetting('STORAGE_CALL_TIMEOUT_MS', DEFAULT_CALL_TIMEOUT_MS);
}

/**
 * An abort signal for one call: fires after `ms`, or when `parent` aborts, whichever comes first.
 * Pass it as `abortSignal` on every SDK call.
 */
export function deadline(ms: number = callTimeoutMs(), parent?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(ms);
    return parent ? AbortSignal.any([timeout, parent]) : timeout;
}
