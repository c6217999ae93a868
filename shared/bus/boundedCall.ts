import { HvrError } from '../errors';

export interface BusCallBound {
    /** What the call is, for the error: "complete", "receive". */
    what: string;
    /** Longest wait, in ms. */
    timeoutMs: number;
    /** The call can no longer answer once this is true (its receiver closed for good). */
    closed?: () => boolean;
    /** Named in the error's details. */
    details?: Record<string, unknown>;
}

/** How often a bounded call looks at `closed`. */
const CLOSED_POLL_MS = 100;

/**
 * Waits for one Service Bus SDK call for at most `timeoutMs`, and no longer than its receiver stays open. The
 * SDK's `retryOptions.timeoutInMs` does not bound everything: a settlement (complete, abandon, dead-letter) whose
 * link drops while it is in flight was seen never to settle (@azure/service-bus 7.9.5), and a receive loop that
 * waits on it stops for good. TIMEOUT after the bound, TRANSIENT when the receiver closed; either way the message
 * stays unsettled and the broker delivers it again.
 */
export async function boundedBusCall<T>(call: Promise<T>, bound: BusCallBound): Promise<T> {
    // The call may still reject after the bound has: that rejection is expected and not an unhandled one.
    call.catch(() => undefined);
    const started = Date.now();
    let poll: NodeJS.Timeout | undefined;
    const guard = new Promise<never>((_, reject) => {
        poll = setInterval(() => {
            const details = () => ({ ...bound.details, operation: bound.what });
            if (bound.closed?.()) {
                reject(
                    new HvrError(
                        'TRANSIENT',
                        `The receiver closed during ${bound.what} (its link or connection went).`,
                        details(),
                    ),
                );
            } else if (Date.now() - started > bound.timeoutMs) {
                reject(new HvrError('TIMEOUT', `No answer to ${bound.what} within ${bound.timeoutMs} ms.`, details()));
            }
        }, CLOSED_POLL_MS);
        poll.unref?.();
    });
    try {
        return await Promise.race([call, guard]);
    } finally {
        clearInterval(poll);
    }
}
