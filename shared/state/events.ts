import { RestError } from '@azure/core-rest-pipeline';
import { TableClient, TableEntity, TransactionAction } from '@azure/data-tables';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { assertEntityWithinLimits, decodeKey, encodeKey } from './tables';

/** How long events are kept, as ASR keeps them. */
export const EVENT_RETENTION_HOURS = 72;

export type EventSeverity = 'Info' | 'Warning' | 'Critical';

/** Something that happened to a protected VM, for the operator's event list. */
export interface ReplicationEvent {
    vmId: string;
    /** Unique within the VM; deterministic when written by an orchestration, so a replayed write is the same row. */
    eventId: string;
    occurredAt: string;
    kind: string;
    severity: EventSeverity;
    message: string;
    details?: Record<string, unknown>;
}

export const EVENTS_TABLE = 'ReplicationEvents';

/** Newest first within a VM's partition: row keys sort by inverted time. */
function rowKeyFor(occurredAt: string, eventId: string): string {
    const inverted = (8_640_000_000_000_000 - Date.parse(occurredAt)).toString().padStart(16, '0');
    return `${inverted}_${encodeKey(eventId)}`;
}

/** Records an event (idempotent per eventId and time) and drops the VM's events older than the retention. */
export async function appendEvent(scope: StateScope, event: ReplicationEvent): Promise<void> {
    const table = await stateTable(scope, EVENTS_TABLE);
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(event.vmId),
        rowKey: rowKeyFor(event.occurredAt, event.eventId),
        vmId: event.vmId,
        eventId: event.eventId,
        occurredAt: new Date(event.occurredAt),
        kind: event.kind,
        severity: event.severity,
        message: event.message,
    };
    if (event.details !== undefined) entity.details = JSON.stringify(event.details);
    assertEntityWithinLimits(entity);
    await table.upsertEntity(entity, 'Replace', { abortSignal: deadline() });
    const cutoff = new Date(Date.parse(event.occurredAt) - EVENT_RETENTION_HOURS * 3600_000);
    await pruneEvents(scope, cutoff, event.vmId);
}

function fromEntity(e: Record<string, unknown>): ReplicationEvent {
    const occurred = e.occurredAt;
    const event: ReplicationEvent = {
        vmId: (e.vmId as string | undefined) ?? decodeKey(e.partitionKey as string),
        eventId: e.eventId as string,
        occurredAt: occurred instanceof Date ? occurred.toISOString() : new Date(occurred as string).toISOString(),
        kind: e.kind as string,
        severity: e.severity as EventSeverity,
        message: e.message as string,
    };
    if (typeof e.details === 'string') event.details = JSON.parse(e.details) as Record<string, unknown>;
    return event;
}

/** Events newest first, for one VM or all. */
export async function listEvents(
    scope: StateScope,
    filter: { vmId?: string; since?: string; top?: number } = {},
): Promise<ReplicationEvent[]> {
    const table = await stateTable(scope, EVENTS_TABLE);
    const clauses: string[] = [];
    if (filter.vmId !== undefined) clauses.push(`PartitionKey eq '${encodeKey(filter.vmId)}'`);
    if (filter.since !== undefined) clauses.push(`occurredAt ge datetime'${new Date(filter.since).toISOString()}'`);
    const events: ReplicationEvent[] = [];
    const queryOptions = clauses.length > 0 ? { filter: clauses.join(' and ') } : undefined;
    for await (const e of table.listEntities<Record<string, unknown>>({ queryOptions, abortSignal: deadline() })) {
        events.push(fromEntity(e));
    }
    events.sort((a, b) => b.occurredAt.localeCompare(a.occurredAt));
    return filter.top !== undefined ? events.slice(0, filter.top) : events;
}

async function deleteBatch(table: TableClient, partitionKey: string, rowKeys: string[]): Promise<void> {
    const actions: TransactionAction[] = rowKeys.map((rowKey) => ['delete', { partitionKey, rowKey }]);
    try {
        await table.submitTransaction(actions, { abortSignal: deadline() });
    } catch (err) {
        // Another pruner may have deleted some of them already; fall back to one by one, ignoring 404s.
        if (!(err instanceof RestError) || (err.statusCode !== 404 && err.statusCode !== 400)) throw err;
        for (const rowKey of rowKeys) {
            try {
                await table.deleteEntity(partitionKey, rowKey, { abortSignal: deadline() });
            } catch (inner) {
                if (!(inner instanceof RestError) || inner.statusCode !== 404) throw inner;
            }
        }
    }
}

/** Deletes events that occurred before `olderThan` (of one VM, or all). Returns how many went. */
export async function pruneEvents(scope: StateScope, olderThan: Date, vmId?: string): Promise<number> {
    const table = await stateTable(scope, EVENTS_TABLE);
    const clauses = [`occurredAt lt datetime'${olderThan.toISOString()}'`];
    if (vmId !== undefined) clauses.push(`PartitionKey eq '${encodeKey(vmId)}'`);
    const byPartition = new Map<string, string[]>();
    for await (const e of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: clauses.join(' and '), select: ['PartitionKey', 'RowKey'] },
        abortSignal: deadline(),
    })) {
        const keys = byPartition.get(e.partitionKey as string) ?? [];
        keys.push(e.rowKey as string);
        byPartition.set(e.partitionKey as string, keys);
    }
    let deleted = 0;
    for (const [partitionKey, rowKeys] of byPartition) {
        for (let i = 0; i < rowKeys.length; i += 100) {
            const batch = rowKeys.slice(i, i + 100);
            await deleteBatch(table, partitionKey, batch);
            deleted += batch.length;
        }
    }
    return deleted;
}
