import { app, InvocationContext, Timer } from '@azure/functions';
import { ports } from '../shared/ports';
import { stateScope } from '../shared/state/protectedItems';
import { pruneRpoHistory as prune, RPO_HISTORY_RETENTION_HOURS } from '../shared/state/rpoHistory';

/** Once a day: drops the RPO samples older than the retention (the monitor only writes, one row per wake). */
export async function pruneRpoHistory(_timer: Timer, context: InvocationContext): Promise<void> {
    const deleted = await prune(stateScope(), ports().clock.now());
    context.log(`RPO history: ${deleted} sample(s) older than ${RPO_HISTORY_RETENTION_HOURS} h deleted`);
}

app.timer('pruneRpoHistory', { schedule: '0 20 3 * * *', handler: pruneRpoHistory });
