import { isCurrent, type ActivityWork, type ChildStart } from './historyRules';
import { TERMINAL_STATUSES, type InstanceMessage, type InstanceState } from './store';
import type { TimerEntry } from './timers';

/**
 * What a runtime opening saved instances must set going again: everything the last host had in memory only
 * when it stopped (its activity queue, armed timers, messages and child starts not yet carried out), derived
 * from the saved states alone.
 */
export interface RecoveryPlan {
    /** Instances with messages in their inbox: run an episode. */
    ready: string[];
    /** Scheduled activities without a result in the inbox: run them (again: at least once, as the real framework). */
    activities: ActivityWork[];
    /** Timers not fired yet: arm them at their fire times (a past one fires at once). */
    timers: TimerEntry[];
    /** Sub-orchestrations a parent waits for that were never created (or whose instance belongs to another parent). */
    children: ChildStart[];
    /** Completions a finished child sent its parent (its outbox) that did not reach the parent's inbox. */
    messages: { instanceId: string; message: InstanceMessage }[];
}

function sameMessage(a: InstanceMessage, b: InstanceMessage): boolean {
    return JSON.stringify(a) === JSON.stringify(b);
}

function hasResultFor(state: InstanceState, taskScheduledId: number): boolean {
    return state.inbox.some(
        (m) =>
            (m.kind === 'TaskCompleted' || m.kind === 'TaskFailed') &&
            m.executionId === state.executionId &&
            m.taskScheduledId === taskScheduledId,
    );
}

/** Works out the recovery plan of a set of saved instances (the whole task hub). Pure: reads, changes nothing. */
export function planRecovery(states: readonly InstanceState[]): RecoveryPlan {
    const byId = new Map(states.map((s) => [s.instanceId, s]));
    const plan: RecoveryPlan = { ready: [], activities: [], timers: [], children: [], messages: [] };
    for (const state of states) {
        if (TERMINAL_STATUSES.has(state.runtimeStatus)) {
            for (const sent of state.outbox ?? []) {
                const target = byId.get(sent.instanceId);
                if (!target || TERMINAL_STATUSES.has(target.runtimeStatus)) continue;
                if (!isCurrent(target, sent.message)) continue;
                if (target.inbox.some((m) => sameMessage(m, sent.message))) continue;
                plan.messages.push(sent);
            }
            continue;
        }
        if (state.inbox.length > 0) plan.ready.push(state.instanceId);
        for (const [key, task] of Object.entries(state.pending)) {
            const id = Number(key);
            const base = { instanceId: state.instanceId, executionId: state.executionId };
            if (task.kind === 'activity') {
                if (!hasResultFor(state, id))
                    plan.activities.push({ ...base, taskScheduledId: id, name: task.name, input: task.input });
            } else if (task.kind === 'timer') {
                if (!task.fired) plan.timers.push({ ...base, timerId: id, fireAtMs: Date.parse(task.fireAt) });
            } else {
                const parent = { ...base, taskScheduledId: id };
                const child = byId.get(task.instanceId);
                const linked =
                    child?.parent?.instanceId === parent.instanceId &&
                    child.parent.executionId === parent.executionId &&
                    child.parent.taskScheduledId === parent.taskScheduledId;
                if (!linked)
                    plan.children.push({ parent, name: task.name, instanceId: task.instanceId, input: task.input });
            }
        }
    }
    return plan;
}
