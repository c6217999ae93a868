import { CycleCompleteEvent, LogAppliedEvent, MergeFailedEvent, ResyncRequiredEvent } from '../lifecycle/instances';

/**
 * How the merge tells the VM's orchestrations what happened. The function wires the durable client;
 * tests pass a recorder. Implementations must not throw for an orchestration that does not exist.
 */
export interface MergeNotifier {
    logApplied(event: LogAppliedEvent): Promise<void>;
    cycleComplete(event: CycleCompleteEvent): Promise<void>;
    resyncRequired(event: ResyncRequiredEvent): Promise<void>;
    mergeFailed(event: MergeFailedEvent): Promise<void>;
}

/** Drops every notification (the local tools, benchmarks). */
export const silentNotifier: MergeNotifier = {
    logApplied: async () => undefined,
    cycleComplete: async () => undefined,
    resyncRequired: async () => undefined,
    mergeFailed: async () => undefined,
};

/** Keeps every notification in order, for tests and the local host's log. */
export class RecordingNotifier implements MergeNotifier {
    readonly events: { name: string; event: object }[] = [];
    async logApplied(event: LogAppliedEvent): Promise<void> {
        this.events.push({ name: 'logApplied', event });
    }
    async cycleComplete(event: CycleCompleteEvent): Promise<void> {
        this.events.push({ name: 'cycleComplete', event });
    }
    async resyncRequired(event: ResyncRequiredEvent): Promise<void> {
        this.events.push({ name: 'resyncRequired', event });
    }
    async mergeFailed(event: MergeFailedEvent): Promise<void> {
        this.events.push({ name: 'mergeFailed', event });
    }
    named<T>(name: string): T[] {
        return this.events.filter((e) => e.name === name).map((e) => e.event as T);
    }
}
