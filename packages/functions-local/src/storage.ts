import { RestError } from '@azure/core-rest-pipeline';
import { AzureNamedKeyCredential, TableClient, TableServiceClient, type TableEntity } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';

/** The bound on any single storage call the host makes: a hung socket never hangs a trigger. */
export const STORAGE_CALL_TIMEOUT_MS = 60_000;

/** An abort signal for one call: fires after `ms`. Passed as `abortSignal` on every SDK call. */
export function deadline(ms: number = STORAGE_CALL_TIMEOUT_MS): AbortSignal {
    return AbortSignal.timeout(ms);
}

/** The blob and table clients of one storage account (a connection string, as the local host supports). */
export interface StorageConnection {
    blob: BlobServiceClient;
    tables: TableServiceClient;
    tableClient(tableName: string): TableClient;
}

const DEV_STORAGE =
    'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
    'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;' +
    'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;' +
    'TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;';

function connectionStringParts(cs: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of cs.split(';')) {
        const i = part.indexOf('=');
        if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
}

/** The clients of a storage connection string (`UseDevelopmentStorage=true` is Azurite on its usual ports). */
export function connectionFromString(connectionString: string): StorageConnection {
    const cs = connectionString.trim().toLowerCase() === 'usedevelopmentstorage=true' ? DEV_STORAGE : connectionString;
    const parts = connectionStringParts(cs);
    const blob = BlobServiceClient.fromConnectionString(cs, {
        retryOptions: { maxTries: 4, tryTimeoutInMs: 60_000 },
        keepAliveOptions: { enable: true },
    });
    const { AccountName: accountName, AccountKey: accountKey, TableEndpoint: tableEndpoint } = parts;
    if (tableEndpoint && accountName && accountKey) {
        const credential = new AzureNamedKeyCredential(accountName, accountKey);
        const allowInsecureConnection = tableEndpoint.startsWith('http:');
        return {
            blob,
            tables: new TableServiceClient(tableEndpoint, credential, { allowInsecureConnection }),
            tableClient: (name) => new TableClient(tableEndpoint, name, credential, { allowInsecureConnection }),
        };
    }
    return {
        blob,
        tables: TableServiceClient.fromConnectionString(cs),
        tableClient: (name) => TableClient.fromConnectionString(cs, name),
    };
}

const ensuredTables = new WeakMap<StorageConnection, Map<string, Promise<TableClient>>>();

/** A table client, creating the table once per connection. */
export function tableFor(connection: StorageConnection, name: string): Promise<TableClient> {
    let perConnection = ensuredTables.get(connection);
    if (!perConnection) {
        perConnection = new Map();
        ensuredTables.set(connection, perConnection);
    }
    let client = perConnection.get(name);
    if (!client) {
        const table = connection.tableClient(name);
        client = table.createTable({ abortSignal: deadline() }).then(() => table);
        client.catch(() => perConnection.delete(name));
        perConnection.set(name, client);
    }
    return client;
}

/**
 * Table keys may not hold `/ \ # ?` or control characters: a reversible encoding that keeps ordinary names
 * (GUIDs, names with dashes) unchanged.
 */
export function encodeKey(value: string): string {
    return encodeURIComponent(value)
        .replace(/[~!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
        .replace(/%/g, '~');
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
