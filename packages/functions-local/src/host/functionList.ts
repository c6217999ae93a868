import type { HttpFrontDoor } from './httpFrontDoor';
import type { HostPlugin } from './plugins';
import type { RegisteredFunction } from './registry';
import type { TimerScheduler } from './timerTriggers';

/** One function as listed at start. */
export interface FunctionSummary {
    name: string;
    trigger: string;
    detail: string;
}

const DURABLE_TRIGGERS = new Set(['orchestrationtrigger', 'activitytrigger', 'entitytrigger']);

/** What the start-up list is made from. */
export interface FunctionListSources {
    frontDoor: HttpFrontDoor;
    apiUrl: string;
    timers: TimerScheduler;
    settings: Record<string, string>;
    plugins: readonly HostPlugin[];
}

/** The functions as the host lists them at start: how each is triggered and where. */
export function describeFunctions(all: RegisteredFunction[], sources: FunctionListSources): FunctionSummary[] {
    const { frontDoor, apiUrl, timers, settings, plugins } = sources;
    const base = apiUrl.replace(/\/[^/]*$/, '');
    const nextTimers = timers.nextOccurrences();
    return all
        .map((fn): FunctionSummary => {
            const t = fn.trigger;
            const type = t.type;
            switch (type.toLowerCase()) {
                case 'httptrigger': {
                    const route = frontDoor.routes.find((r) => r.fn === fn)!;
                    const auth = route.authLevel === 'anonymous' ? '' : ` (key: ${route.authLevel})`;
                    return {
                        name: fn.name,
                        trigger: 'http',
                        detail: `${route.methods.join(',')} ${base}${route.displayPath}${auth}`,
                    };
                }
                case 'blobtrigger':
                    return {
                        name: fn.name,
                        trigger: 'blob',
                        detail: `${String(t.path)} via ${String(t.connection)} (${t.source === 'EventGrid' ? 'Event Grid semantics' : 'polling semantics'}, container scan)`,
                    };
                case 'queuetrigger':
                    return {
                        name: fn.name,
                        trigger: 'queue',
                        detail: `${String(t.queueName)} via ${String(t.connection)} (Storage queue; poison: ${String(t.queueName)}-poison)`,
                    };
                case 'timertrigger': {
                    const next = nextTimers.get(fn.name);
                    return {
                        name: fn.name,
                        trigger: 'timer',
                        detail: `${String(t.schedule)} (UTC), next ${next ? next.toISOString() : 'never'}${t.runOnStartup ? ', runOnStartup' : ''}`,
                    };
                }
                default: {
                    const byPlugin = plugins.map((p) => p.describe?.(fn, settings)).find((x) => x !== undefined);
                    if (byPlugin !== undefined) {
                        return { name: fn.name, trigger: type.replace(/Trigger$/i, ''), detail: byPlugin };
                    }
                    return {
                        name: fn.name,
                        trigger: type.replace(/Trigger$/i, ''),
                        detail: DURABLE_TRIGGERS.has(type.toLowerCase())
                            ? `durable task hub ${settings.DURABLE_TASK_HUB}`
                            : 'not hosted locally',
                    };
                }
            }
        })
        .sort((a, b) => a.trigger.localeCompare(b.trigger) || a.name.localeCompare(b.name));
}
