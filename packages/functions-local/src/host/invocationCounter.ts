/**
 * Executions of the app's functions in this process, by function name: every call through `invokeFunction`
 * (HTTP, queues, blobs, timers, Service Bus, activities, the real engine's orchestrator calls) and every
 * orchestrator episode the embedded engine runs, with the time spent in them. What a Functions plan bills as
 * executions and execution time; the soak benchmark reads it.
 */
export interface InvocationCount {
    name: string;
    triggerType: string;
    count: number;
    failed: number;
    totalMs: number;
    maxMs: number;
}

const counts = new Map<string, InvocationCount>();

/** Starts timing one execution of `name`; call the result when it ends. */
export function countInvocation(name: string, triggerType: string): (failed?: boolean) => void {
    const started = performance.now();
    return (failed = false) => {
        const ms = performance.now() - started;
        let entry = counts.get(name);
        if (!entry) {
            entry = { name, triggerType, count: 0, failed: 0, totalMs: 0, maxMs: 0 };
            counts.set(name, entry);
        }
        entry.count++;
        if (failed) entry.failed++;
        entry.totalMs += ms;
        entry.maxMs = Math.max(entry.maxMs, ms);
    };
}

/** Every function executed so far in this process. */
export function invocationCounts(): InvocationCount[] {
    return [...counts.values()].map((c) => ({ ...c }));
}
