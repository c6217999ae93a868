import { TableEntity } from '@azure/data-tables';
import { RestError } from '@azure/core-rest-pipeline';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { encodeKey } from './tables';

/**
 * RPO over time, one row per monitor wake (a wake happens on every applied cycle and at least every 15 minutes):
 * what the console's RPO chart draws. The monitor is the only writer; rows older than the retention are deleted
 * once a day (functions/pruneRpoHistory.ts), and reads never return them.
 */
export const RPO_HISTORY_TABLE = 'RpoHistory';
/** How long samples are kept: the chart shows the last 24 hours, an hour more covers a late wake. */
export const RPO_HISTORY_RETENTION_HOURS = 25;
/** The most samples one request returns (a wake every 30 s for 24 h is 2,880). */
export const RPO_HISTORY_MAX_SAMPLES = 5000;

export interface RpoSample {
    /** When the monitor measured it (ISO 8601). */
    at: string;
    rpoSeconds: number;
}

/** Row keys sort by time: the ISO instant, fixed width (every `toISOString` is 24 characters). */
function rowKeyFor(at: string): string {
    return new Date(at).toISOString();
}

/** Records one sample (a replayed wake writes the same row): one write per wake, nothing read. */
export async function appendRpoSample(scope: StateScope, vmId: string, sample: RpoSample): Promise<void> {
    const table = await stateTable(scope, RPO_HISTORY_TABLE);
    const entity: TableEntity<{ rpoSeconds: number }> = {
        partitionKey: encodeKey(vmId),
        rowKey: rowKeyFor(sample.at),
        rpoSeconds: sample.rpoSeconds,
    };
    await table.upsertEntity(entity, 'Replace', { abortSignal: deadline() });
}

/**
 * Deletes every sample (of every VM, also of VMs no longer protected) taken before `now` minus the retention; the
 * daily `pruneRpoHistory` timer calls it. Returns how many went.
 */
export async function pruneRpoHistory(scope: StateScope, now: Date): Promise<number> {
    const table = await stateTable(scope, RPO_HISTORY_TABLE);
    const cutoff = new Date(now.getTime() - RPO_HISTORY_RETENTION_HOURS * 3600_000).toISOString();
    let deleted = 0;
    for await (const old of table.listEntities({
        queryOptions: { filter: `RowKey lt '${cutoff}'`, select: ['PartitionKey', 'RowKey'] },
        abortSignal: deadline(),
    })) {
        try {
            await table.deleteEntity(old.partitionKey!, old.rowKey!, { abortSignal: deadline() });
            deleted += 1;
        } catch (err) {
            if (!(err instanceof RestError) || err.statusCode !== 404) throw err;
        }
    }
    return deleted;
}

/** The VM's samples since `since`, oldest first, at most RPO_HISTORY_MAX_SAMPLES (the newest ones). */
export async function listRpoSamples(scope: StateScope, vmId: string, since: Date): Promise<RpoSample[]> {
    const table = await stateTable(scope, RPO_HISTORY_TABLE);
    const filter = `PartitionKey eq '${encodeKey(vmId)}' and RowKey ge '${since.toISOString()}'`;
    const samples: RpoSample[] = [];
    for await (const row of table.listEntities<{ rpoSeconds: number }>({
        queryOptions: { filter },
        abortSignal: deadline(),
    })) {
        samples.push({ at: row.rowKey!, rpoSeconds: row.rpoSeconds });
    }
    return samples.slice(-RPO_HISTORY_MAX_SAMPLES);
}
