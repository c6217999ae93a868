import { app, InvocationContext, Timer } from '@azure/functions';
import { DEFAULT_FRESHNESS } from '../shared/contracts/commandHandler';
import { ports } from '../shared/ports';
import { StateScope, stateScope } from '../shared/state/protectedItems';
import { listSites } from '../shared/state/sites';
import { providerSites } from './apiHttp';

/**
 * Forgets processed provider message ids that can no longer be replayed. A message older than the freshness
 * window is refused as stale before the replay window is read, so ids older than twice that window only cost
 * table space.
 */
export async function sweepReplayWindows(scope: StateScope, now: Date): Promise<Record<string, number>> {
    const before = new Date(now.getTime() - 2 * DEFAULT_FRESHNESS.maxAgeMs);
    const deleted: Record<string, number> = {};
    const table = providerSites(scope);
    for (const site of await listSites(scope)) {
        deleted[site.siteId] = await table.pruneReplayWindow(site.siteId, before);
    }
    return deleted;
}

export async function providerReplayWindowSweep(_timer: Timer, context: InvocationContext): Promise<void> {
    const deleted = await sweepReplayWindows(stateScope(), ports().clock.now());
    context.log(`provider replay windows swept: ${JSON.stringify(deleted)}`);
}

app.timer('providerReplayWindowSweep', { schedule: '0 17 * * * *', handler: providerReplayWindowSweep });
