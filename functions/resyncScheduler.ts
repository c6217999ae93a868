import { app, InvocationContext, Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { startOnce } from '../shared/lifecycle/durableClientErrors';
import { integerSetting } from '../shared/config';
import { HvrError } from '../shared/errors';
import { instanceIds, ResyncReason } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { ResyncCandidate, selectResyncsToStart } from '../shared/resync/schedule';
import { getPolicy, StoredReplicationPolicy } from '../shared/state/policies';
import { listProtectedItems, StateScope, stateScope } from '../shared/state/protectedItems';
import { getSite, Site } from '../shared/state/sites';
import { RESYNC_ORCHESTRATION, ResyncInput } from '../orchestrations/resync/events';

/** Resyncs that may run at once per site (RESYNC_MAX_PER_SITE): each reads a whole disk on the host. */
export const DEFAULT_RESYNC_MAX_PER_SITE = 2;

/** The part of the durable client the scheduler needs. */
export interface ResyncStarter {
    getStatus(instanceId: string): Promise<{ runtimeStatus?: string } | undefined>;
    startNew(name: string, options: { instanceId: string; input: unknown }): Promise<string>;
}

export interface SchedulerRun {
    started: string[];
    /** VMs that need a resync but wait: outside their window, or their site is at its limit. */
    waiting: string[];
    running: string[];
}

const ACTIVE = new Set<string>([
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.ContinuedAsNew,
]);

async function isActive(starter: ResyncStarter, instanceId: string): Promise<boolean> {
    const status = await starter.getStatus(instanceId).catch(() => undefined);
    return status?.runtimeStatus !== undefined && ACTIVE.has(status.runtimeStatus);
}

/**
 * One scheduler pass: protected VMs marked ResynchronizationRequired whose site is inside its off-hours window
 * (the policy's window, read in its own time zone or the site's) start a resync, at most `perSiteLimit` running
 * per site; an operator's request (reason OperatorRequested) ignores the window. The instance id is
 * deterministic and its status is checked right before the start, so overlapping passes start nothing twice.
 */
export async function scheduleResyncs(
    scope: StateScope,
    starter: ResyncStarter,
    now: Date,
    perSiteLimit: number,
    log: (message: string) => void = () => undefined,
): Promise<SchedulerRun> {
    const items = (await listProtectedItems(scope)).filter((i) => i.protectionState === 'Protected');
    const sites = new Map<string, Site | undefined>();
    const policies = new Map<string, StoredReplicationPolicy | undefined>();
    const running = new Set<string>();
    const runningPerSite: Record<string, number> = {};
    const candidates: ResyncCandidate[] = [];
    for (const item of items) {
        const state = item.resynchronizationState;
        if (state !== 'ResynchronizationRequired' && state !== 'ResynchronizationInitiated') continue;
        if (await isActive(starter, instanceIds.resync(item.vmId))) {
            running.add(item.vmId);
            runningPerSite[item.siteId] = (runningPerSite[item.siteId] ?? 0) + 1;
            continue;
        }
        if (state !== 'ResynchronizationRequired') continue;
        if (!sites.has(item.siteId)) sites.set(item.siteId, await getSite(scope, item.siteId));
        if (!policies.has(item.policyName)) policies.set(item.policyName, await getPolicy(scope, item.policyName));
        const site = sites.get(item.siteId);
        const policy = policies.get(item.policyName);
        if (!site || !policy) {
            log(
                `resync of ${item.vmId} waits: ${!site ? `site ${item.siteId}` : `policy ${item.policyName}`} not found`,
            );
            continue;
        }
        candidates.push({
            vmId: item.vmId,
            siteId: item.siteId,
            window: {
                start: policy.offHoursWindow.start,
                end: policy.offHoursWindow.end,
                timeZone: policy.offHoursWindow.timeZone ?? site.timeZone,
            },
            immediate: item.resyncReason === 'OperatorRequested',
            requiredAt: item.updatedAt,
        });
    }
    const chosen = selectResyncsToStart(candidates, running, runningPerSite, perSiteLimit, now);
    const started: string[] = [];
    for (const c of chosen) {
        const instanceId = instanceIds.resync(c.vmId);
        if (await isActive(starter, instanceId)) continue;
        const item = items.find((i) => i.vmId === c.vmId)!;
        const input: ResyncInput = {
            vmId: c.vmId,
            siteId: c.siteId,
            reason: (item.resyncReason as ResyncReason | undefined) ?? 'ChainGap',
            requestedAt: now.toISOString(),
        };
        // Another pass starting it between the check and the start is the outcome we wanted ('alreadyRunning').
        if ((await startOnce(starter, RESYNC_ORCHESTRATION, instanceId, input)) === 'started') started.push(c.vmId);
    }
    const startedSet = new Set(started);
    return {
        started,
        waiting: candidates.map((c) => c.vmId).filter((v) => !startedSet.has(v)),
        running: [...running],
    };
}

export async function resyncScheduler(_timer: Timer, context: InvocationContext): Promise<SchedulerRun> {
    const limit = integerSetting('RESYNC_MAX_PER_SITE', DEFAULT_RESYNC_MAX_PER_SITE);
    if (limit < 1) throw new HvrError('CONFIG_MISSING', `RESYNC_MAX_PER_SITE must be at least 1, got ${limit}.`);
    const client = df.getClient(context);
    const run = await scheduleResyncs(
        stateScope(),
        {
            getStatus: (id) => client.getStatus(id),
            startNew: (name, options) => client.startNew(name, options),
        },
        ports().clock.now(),
        limit,
        (m) => context.log(m),
    );
    context.log(
        `resync scheduler: started ${run.started.length} [${run.started.join(', ')}], waiting ${run.waiting.length}, running ${run.running.length}`,
    );
    return run;
}

app.timer('resyncScheduler', {
    schedule: '0 */5 * * * *',
    extraInputs: [df.input.durableClient()],
    handler: resyncScheduler,
});
