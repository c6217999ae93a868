/** Where the durable runtime reads the time: the wall clock for the local host, a virtual one in tests. */
export interface Clock {
    now(): Date;
}

/**
 * A clock that moves only when told to. The durable runtime advances it to each due timer, so a test can run
 * days of retries and waits in milliseconds, and every timestamp in a history is exact.
 */
export class VirtualClock implements Clock {
    private currentMs: number;

    constructor(start: Date = new Date('2025-01-01T00:00:00.000Z')) {
        const ms = start.getTime();
        if (!Number.isFinite(ms)) throw new RangeError(`VirtualClock start is not a valid date: ${String(start)}`);
        this.currentMs = ms;
    }

    now(): Date {
        return new Date(this.currentMs);
    }

    /** Moves the clock to `to`; time never runs backwards. */
    advanceTo(to: Date): void {
        const ms = to.getTime();
        if (!Number.isFinite(ms)) throw new RangeError(`Cannot move a VirtualClock to an invalid date: ${String(to)}`);
        if (ms > this.currentMs) this.currentMs = ms;
    }

    /** Moves the clock forward by `ms` milliseconds. */
    advanceBy(ms: number): void {
        if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`Cannot move a VirtualClock by ${ms} ms`);
        this.currentMs += ms;
    }
}

/** The wall clock. */
export const realClock: Clock = { now: () => new Date() };

/** Whether the runtime drives time itself (virtual) or waits for it (real). */
export function isVirtualClock(clock: Clock): clock is VirtualClock {
    return clock instanceof VirtualClock;
}
