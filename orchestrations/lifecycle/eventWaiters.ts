import * as df from 'durable-functions';

/** An external event a waiter received: its name and payload. */
export interface ReceivedEvent {
    name: string;
    payload: unknown;
}

/**
 * Every external-event waiter an orchestration yielded, each read exactly once. The engine delivers queued events
 * in batches, and durable-functions hands an event to the newest open waiter of its name or to an older one still
 * open (a waiter of an earlier round), so several can resolve at once and any of them may hold one: an
 * orchestration that looks only at the winner of its last `Task.any` loses the others. Every round yields fresh
 * waiters (a task yielded again in a second `Task.any` would be scheduled a second time).
 */
export class EventWaiters {
    private readonly waiters: { name: string; task: df.Task; read: boolean }[] = [];

    constructor(private readonly context: df.OrchestrationContext) {}

    /** New waiters for `names`, to yield in a `Task.any` (with a timer). */
    fresh(names: readonly string[]): df.Task[] {
        return names.map((name) => {
            const task = this.context.df.waitForExternalEvent(name);
            this.waiters.push({ name, task, read: false });
            return task;
        });
    }

    /** The next event some waiter holds and nobody read yet, marked read; undefined when none. */
    take(): ReceivedEvent | undefined {
        for (const waiter of this.waiters) {
            if (waiter.read || !waiter.task.isCompleted) continue;
            waiter.read = true;
            return { name: waiter.name, payload: waiter.task.result };
        }
        return undefined;
    }

    /**
     * The next unread event; when none is pending, waits for one of `names` for at most `timeoutMs` (one timer,
     * cancelled when an event comes first). Undefined when the time passed with no event.
     */
    *next(names: readonly string[], timeoutMs: number): Generator<df.Task, ReceivedEvent | undefined, unknown> {
        const pending = this.take();
        if (pending) return pending;
        const durable = this.context.df;
        const timer = durable.createTimer(new Date(durable.currentUtcDateTime.getTime() + timeoutMs));
        yield durable.Task.any([...this.fresh(names), timer]);
        const received = this.take();
        if (received && !timer.isCompleted) timer.cancel();
        return received;
    }

    /** Whether some waiter holds an event nobody read yet. */
    get pending(): boolean {
        return this.waiters.some((w) => !w.read && w.task.isCompleted);
    }
}
