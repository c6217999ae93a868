import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { RestError } from '@azure/core-rest-pipeline';
import { connectionFromString, StorageConnection, deadline } from '../storage';
import { azuriteConnectionString } from '../azurite';
import { LocalPlatformError } from '../errors';

/** `UseDevelopmentStorage=true` means Azurite on its standard ports, as the Storage SDKs and Core Tools read it. */
export function expandDevelopmentStorage(connectionString: string): string {
    if (connectionString.trim().toLowerCase() !== 'usedevelopmentstorage=true') return connectionString;
    return azuriteConnectionString(
        'http://127.0.0.1:10000/devstoreaccount1',
        'http://127.0.0.1:10001/devstoreaccount1',
        'http://127.0.0.1:10002/devstoreaccount1',
    );
}

/** The host's own storage (AzureWebJobsStorage): receipts, poison messages, timer status, the local queue. */
export interface HostStorage {
    connectionString: string;
    connection: StorageConnection;
    queues: QueueServiceClient;
    /** A queue client, creating the queue once per host. */
    queue(name: string): Promise<QueueClient>;
}

export function hostStorage(connectionString: string): HostStorage {
    const cs = expandDevelopmentStorage(connectionString);
    const queues = QueueServiceClient.fromConnectionString(cs, {
        retryOptions: { maxTries: 4, tryTimeoutInMs: 30_000 },
        keepAliveOptions: { enable: true },
    });
    const created = new Map<string, Promise<QueueClient>>();
    return {
        connectionString: cs,
        connection: connectionFromString(cs),
        queues,
        queue(name) {
            let client = created.get(name);
            if (!client) {
                const q = queues.getQueueClient(name);
                client = q.createIfNotExists({ abortSignal: deadline() }).then(() => q);
                client.catch(() => created.delete(name));
                created.set(name, client);
            }
            return client;
        },
    };
}

/** The HTTP status of a storage error, if it is one. */
export function statusOf(err: unknown): number | undefined {
    return err instanceof RestError ? err.statusCode : undefined;
}

/**
 * A queue client on the account of a connection setting (empty: AzureWebJobsStorage). Locally the setting must
 * hold a connection string (Azurite); identity-based connections exist only in Azure.
 */
export function localQueueClient(
    settings: Record<string, string | undefined>,
    connection: string,
    queueName: string,
): QueueClient {
    const cs = settings[connection || 'AzureWebJobsStorage'];
    if (!cs) {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `The queue ${queueName} is on the account of setting ${connection}, which is not set; locally it must ` +
                'hold a connection string (Azurite).',
            { setting: connection },
        );
    }
    return QueueServiceClient.fromConnectionString(expandDevelopmentStorage(cs), {
        retryOptions: { maxTries: 4, tryTimeoutInMs: 30_000 },
        keepAliveOptions: { enable: true },
    }).getQueueClient(queueName);
}
