import { app, InvocationContext, Timer } from '@azure/functions';
import * as df from 'durable-functions';
import { integerSetting } from '../shared/config';
import { HvrError } from '../shared/errors';
import { ports } from '../shared/ports';

/** Days a finished orchestration instance (its history and status) stays in the task hub. */
export const DEFAULT_DURABLE_HISTORY_RETENTION_DAYS = 30;

/** The statuses from which an instance never moves again: only these are purged. */
const FINISHED = [
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
];

/** The part of the durable client the purge needs. */
export interface HistoryPurger {
    purgeInstanceHistoryBy(filter: {
        createdTimeFrom: Date;
        createdTimeTo?: Date;
        runtimeStatus?: df.OrchestrationRuntimeStatus[];
    }): Promise<{ instancesDeleted: number }>;
}

/**
 * Purges every Completed, Failed or Terminated instance created more than `retentionDays` ago: each enable,
 * disable, resync, failover and drill would otherwise stay in the task hub for ever. Running and
 * continued-as-new instances (the monitors) are never touched, however old. The API filters on creation time,
 * so an instance that ran for longer than the retention goes as soon as it finishes.
 */
export async function purgeFinishedInstances(
    client: HistoryPurger,
    now: Date,
    retentionDays: number,
): Promise<{ instancesDeleted: number; createdBefore: string }> {
    if (retentionDays < 1) {
        throw new HvrError(
            'CONFIG_MISSING',
            `DURABLE_HISTORY_RETENTION_DAYS must be at least 1, got ${retentionDays}: a finished instance must stay long enough to be inspected.`,
        );
    }
    const createdBefore = new Date(now.getTime() - retentionDays * 24 * 3600_000);
    const result = await client.purgeInstanceHistoryBy({
        createdTimeFrom: new Date(0),
        createdTimeTo: createdBefore,
        runtimeStatus: FINISHED,
    });
    return { instancesDeleted: result.instancesDeleted, createdBefore: createdBefore.toISOString() };
}

export async function purgeDurableHistory(_timer: Timer, context: InvocationContext): Promise<void> {
    const retentionDays = integerSetting('DURABLE_HISTORY_RETENTION_DAYS', DEFAULT_DURABLE_HISTORY_RETENTION_DAYS);
    const result = await purgeFinishedInstances(df.getClient(context), ports().clock.now(), retentionDays);
    context.log(
        `durable history purge: ${result.instancesDeleted} finished instance(s) created before ${result.createdBefore} deleted`,
    );
}

app.timer('purgeDurableHistory', {
    schedule: '0 40 3 * * *',
    extraInputs: [df.input.durableClient()],
    handler: purgeDurableHistory,
});
