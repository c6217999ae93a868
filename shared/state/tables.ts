import { RestError } from '@azure/core-rest-pipeline';
import { TableClient, TableEntity } from '@azure/data-tables';
import { HvrError } from '../errors';
import { StorageConnection } from '../storage/connections';
import { deadline } from '../storage/deadline';

/** Azure Table limits, enforced here because Azurite is more lenient (it counts UTF-8 and allows more). */
export const TABLE_LIMITS = {
    entityBytes: 1024 * 1024,
    stringPropertyBytes: 64 * 1024,
    properties: 252,
    batchOperations: 100,
};

const ensured = new WeakMap<StorageConnection, Map<string, Promise<TableClient>>>();

/** A client for `name`, creating the table once per process. */
export function tableFor(conn: StorageConnection, name: string): Promise<TableClient> {
    let perConn = ensured.get(conn);
    if (!perConn) {
        perConn = new Map();
        ensured.set(conn, perConn);
    }
    let client = perConn.get(name);
    if (!client) {
        const table = conn.tableClient(name);
        client = table.createTable({ abortSignal: deadline() }).then(() => table);
        client.catch(() => perConn.delete(name));
        perConn.set(name, client);
    }
    return client;
}

/**
 * Table keys may not hold `/ \ # ?` or control characters (and Azurite answers 500 to a `/`).
 * This encoding is reversible and keeps ordinary ids (GUIDs, names with dashes) unchanged.
 */
export function encodeKey(value: string): string {
    return encodeURIComponent(value)
        .replace(/[~!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
        .replace(/%/g, '~');
}

export function decodeKey(key: string): string {
    return decodeURIComponent(key.replace(/~/g, '%'));
}

function utf16Bytes(value: string): number {
    return value.length * 2;
}

/** Rejects an entity Azure would refuse, with the property that is too large. */
export function assertEntityWithinLimits<T extends object>(entity: TableEntity<T>): void {
    const props = Object.entries(entity);
    if (props.length > TABLE_LIMITS.properties) {
        throw new HvrError('VALIDATION_FAILED', `Entity has ${props.length} properties; Azure allows 252.`);
    }
    let total = 4;
    for (const [name, value] of props as [string, unknown][]) {
        total += 8 + utf16Bytes(name);
        if (typeof value === 'string') {
            const bytes = utf16Bytes(value);
            if (bytes > TABLE_LIMITS.stringPropertyBytes) {
                throw new HvrError(
                    'VALIDATION_FAILED',
                    `Property ${name} is ${bytes} bytes as UTF-16; Azure allows 64 KiB per string property.`,
                );
            }
            total += 4 + bytes;
        } else if (value instanceof Uint8Array) {
            total += 4 + value.byteLength;
        } else {
            total += 8;
        }
    }
    if (total > TABLE_LIMITS.entityBytes) {
        throw new HvrError('VALIDATION_FAILED', `Entity is ${total} bytes; Azure allows 1 MiB.`);
    }
}

/** Maps a table call's failure onto our codes: 412 → CONCURRENT_UPDATE, 409 → CONFLICT, 404 → NOT_FOUND. */
export function mapTableError(err: unknown, what: string): unknown {
    if (err instanceof RestError) {
        if (err.statusCode === 412) {
            return new HvrError('CONCURRENT_UPDATE', `${what} was changed by someone else; read it again and retry.`, {
                statusCode: 412,
            });
        }
        if (err.statusCode === 409) return new HvrError('CONFLICT', `${what} already exists.`, { statusCode: 409 });
        if (err.statusCode === 404) return new HvrError('NOT_FOUND', `${what} does not exist.`, { statusCode: 404 });
    }
    return err;
}

/**
 * Creates an entity once: false, changing nothing, when one with the same keys already exists (a retried
 * activity, or a racer that got there first). Other failures are mapped by `mapTableError`.
 */
export async function createEntityIfAbsent<T extends object>(
    table: TableClient,
    entity: TableEntity<T>,
    what: string,
): Promise<boolean> {
    try {
        await table.createEntity(entity, { abortSignal: deadline() });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 409) return false;
        throw mapTableError(err, what);
    }
}

/** Reads one entity, or undefined when it does not exist. */
export async function getEntityOrUndefined<T extends object>(
    table: TableClient,
    partitionKey: string,
    rowKey: string,
): Promise<(TableEntity<T> & { etag: string }) | undefined> {
    try {
        return (await table.getEntity<T>(partitionKey, rowKey, { abortSignal: deadline() })) as TableEntity<T> & {
            etag: string;
        };
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return undefined;
        throw err;
    }
}
