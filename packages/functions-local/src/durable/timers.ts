import { TERMINAL_STATUSES, type InstanceState } from './store';

/** A durable timer the runtime has to fire: the instance, its execution and the timer's sequence id. */
export interface TimerEntry {
    instanceId: string;
    executionId: string;
    timerId: number;
    fireAtMs: number;
}

function byDueTime(a: TimerEntry, b: TimerEntry): number {
    return a.fireAtMs - b.fireAtMs || a.timerId - b.timerId;
}

/** Whether a timer is still awaited by its instance (not cancelled, not of an older execution, not fired). */
export function isLiveTimer(state: InstanceState | undefined, entry: TimerEntry): boolean {
    if (!state || state.executionId !== entry.executionId || TERMINAL_STATUSES.has(state.runtimeStatus)) return false;
    const pending = state.pending[entry.timerId];
    return pending?.kind === 'timer' && !pending.fired;
}

/**
 * Marks a due timer fired and queues its TimerFired for the instance; false when nothing waits for it any more
 * (cancelled, stale or finished), so it is forgotten.
 */
export function fireTimer(state: InstanceState | undefined, entry: TimerEntry): boolean {
    if (!state || !isLiveTimer(state, entry)) return false;
    const pending = state.pending[entry.timerId];
    if (pending?.kind !== 'timer') return false;
    pending.fired = true;
    state.inbox.push({
        kind: 'TimerFired',
        executionId: entry.executionId,
        timerId: entry.timerId,
        fireAt: pending.fireAt,
    });
    return true;
}

/** The timers scheduled so far, in due order (the real backend keeps them as delayed queue messages). */
export class TimerIndex {
    private readonly entries = new Map<string, TimerEntry>();

    add(entry: TimerEntry): void {
        this.entries.set(`${entry.instanceId}\u0000${entry.executionId}\u0000${entry.timerId}`, entry);
    }

    /** The earliest timer for which `isLive` holds; the dead ones before it are forgotten on the way. */
    async next(isLive: (entry: TimerEntry) => Promise<boolean>): Promise<TimerEntry | undefined> {
        for (const [key, entry] of [...this.entries.entries()].sort(([, a], [, b]) => byDueTime(a, b))) {
            if (await isLive(entry)) return entry;
            this.entries.delete(key);
        }
        return undefined;
    }

    /** Removes and returns every timer due at `nowMs`, in due order. */
    takeDue(nowMs: number): TimerEntry[] {
        const due = [...this.entries.entries()]
            .filter(([, t]) => t.fireAtMs <= nowMs)
            .sort(([, a], [, b]) => byDueTime(a, b));
        for (const [key] of due) this.entries.delete(key);
        return due.map(([, entry]) => entry);
    }

    /** When the earliest timer is due, or undefined when there is none. */
    earliestMs(): number | undefined {
        let earliest: number | undefined;
        for (const t of this.entries.values())
            earliest = earliest === undefined ? t.fireAtMs : Math.min(earliest, t.fireAtMs);
        return earliest;
    }
}
