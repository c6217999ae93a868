import { BlobServiceClient, StoragePipelineOptions } from '@azure/storage-blob';
import { TableServiceClient, TableClient, AzureNamedKeyCredential } from '@azure/data-tables';
import { DefaultAzureCredential, ManagedIdentityCredential, TokenCredential } from '@azure/identity';
import { HvrError } from '../errors';
import { optionalSetting } from '../config';

/**
 * A storage connection is named by a setting, as Functions bindings do (`connection: 'REPLICA_STORAGE'`):
 * either `<Name>` holds a connection string (Azurite locally), or `<Name>__accountName` /
 * `<Name>__blobServiceUri` / `<Name>__tableServiceUri` name an account reached with a managed identity
 * (`<Name>__credential = managedidentity`, `<Name>__clientId` for a user-assigned one).
 */
export interface StorageConnection {
    blob: BlobServiceClient;
    tableClient(tableName: string): TableClient;
    tables: TableServiceClient;
    /** Present only with a connection string that carries a key (Azurite, or an account that allows keys). */
    accountKey?: { accountName: string; accountKey: string };
    credential?: TokenCredential;
}

const DEV_STORAGE =
    'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
    'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;' +
    'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;' +
    'TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;';

const blobPipeline: StoragePipelineOptions = {
    retryOptions: { maxTries: 4, tryTimeoutInMs: 60_000 },
    keepAliveOptions: { enable: true },
};

function parseConnectionString(cs: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of cs.split(';')) {
        const i = part.indexOf('=');
        if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
}

export function connectionFromString(connectionString: string): StorageConnection {
    const cs = connectionString.trim() === 'UseDevelopmentStorage=true' ? DEV_STORAGE : connectionString;
    const parts = parseConnectionString(cs);
    const blob = BlobServiceClient.fromConnectionString(cs, blobPipeline);
    const accountName = parts.AccountName;
    const accountKey = parts.AccountKey;
    const tableEndpoint = parts.TableEndpoint;
    let tables: TableServiceClient;
    let tableClient: (name: string) => TableClient;
    if (tableEndpoint && accountName && accountKey) {
        const cred = new AzureNamedKeyCredential(accountName, accountKey);
        const allowInsecureConnection = tableEndpoint.startsWith('http:');
        tables = new TableServiceClient(tableEndpoint, cred, { allowInsecureConnection });
        tableClient = (name) => new TableClient(tableEndpoint, name, cred, { allowInsecureConnection });
    } else {
        tables = TableServiceClient.fromConnectionString(cs);
        tableClient = (name) => TableClient.fromConnectionString(cs, name);
    }
    return {
        blob,
        tables,
        tableClient,
        accountKey: accountName && accountKey ? { accountName, accountKey } : undefined,
    };
}

/** The credential for an identity-based connection `<name>__credential` / `<name>__clientId`. */
export function credentialFor(name: string, env: NodeJS.ProcessEnv): TokenCredential {
    const clientId = optionalSetting(`${name}__clientId`, env);
    const kind = optionalSetting(`${name}__credential`, env);
    if (kind === 'managedidentity') {
        return clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
    }
    return new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
}

/** Resolves the storage connection named by `name` from the app settings. */
export function storageConnection(name: string, env: NodeJS.ProcessEnv = process.env): StorageConnection {
    const cs = optionalSetting(name, env);
    if (cs) return connectionFromString(cs);
    const accountName = optionalSetting(`${name}__accountName`, env);
    const blobUri =
        optionalSetting(`${name}__blobServiceUri`, env) ??
        (accountName ? `https://${accountName}.blob.core.windows.net` : undefined);
    const tableUri =
        optionalSetting(`${name}__tableServiceUri`, env) ??
        (accountName ? `https://${accountName}.table.core.windows.net` : undefined);
    if (!blobUri || !tableUri) {
        throw new HvrError(
            'CONFIG_MISSING',
            `No storage connection "${name}": set ${name} to a connection string, or ${name}__accountName ` +
                `(with ${name}__credential=managedidentity and ${name}__clientId in Azure).`,
            { setting: name },
        );
    }
    const credential = credentialFor(name, env);
    return {
        blob: new BlobServiceClient(blobUri, credential, blobPipeline),
        tables: new TableServiceClient(tableUri, credential),
        tableClient: (table) => new TableClient(tableUri, table, credential),
        credential,
    };
}

const cache = new Map<string, StorageConnection>();

/** One connection per setting name for the life of the process: the SDK clients reuse their sockets. */
export function sharedStorageConnection(name: string): StorageConnection {
    let conn = cache.get(name);
    if (!conn) {
        conn = storageConnection(name);
        cache.set(name, conn);
    }
    return conn;
}

/** Forgets cached connections (tests and the local host change settings between runs). */
export function resetStorageConnections(): void {
    cache.clear();
}
