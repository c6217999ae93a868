import { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { HvrError } from '../../shared/errors';
import { REPLICA_LOGS_CONTAINER } from '../../shared/replica/logBlob';
import {
    blobCreatedEvent,
    encodeLogEventMessage,
    REPLICA_LOG_EVENTS_QUEUE,
    REPLICA_STORAGE_SETTING,
} from '../../shared/replica/logEvents';
import { deadline } from '../../shared/storage/deadline';
import { LocalEventSubscription } from '../../packages/functions-local/src/host/blobTriggers';
import { expandDevelopmentStorage } from '../../packages/functions-local/src/host/hostStorage';
import { RegisteredFunction } from '../../packages/functions-local/src/host/registry';

/** A queue on the account a connection setting names; locally that setting must hold a connection string. */
export function localQueueClient(
    settings: Record<string, string | undefined>,
    connection: string,
    queueName: string,
): QueueClient {
    const cs = settings[connection || 'AzureWebJobsStorage'];
    if (!cs) {
        throw new HvrError(
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

/**
 * The Event Grid subscriptions infra creates in Azure, for the local host to emulate: BlobCreated of container
 * `replica-logs` on the replica storage account → Storage queue `replica-log-events` on the same account, as
 * base64 JSON in the Event Grid schema. Active when the app has a queue trigger on that queue.
 */
export function localEventSubscriptions(
    functions: RegisteredFunction[],
    settings: Record<string, string | undefined>,
): LocalEventSubscription[] {
    const consumes = functions.some(
        (f) => f.trigger.type.toLowerCase() === 'queuetrigger' && f.trigger.queueName === REPLICA_LOG_EVENTS_QUEUE,
    );
    if (!consumes) return [];
    let created: Promise<QueueClient> | undefined;
    return [
        {
            name: 'replica-log-created',
            connection: REPLICA_STORAGE_SETTING,
            container: REPLICA_LOGS_CONTAINER,
            queue: () => {
                created ??= (async () => {
                    const q = localQueueClient(settings, REPLICA_STORAGE_SETTING, REPLICA_LOG_EVENTS_QUEUE);
                    await q.createIfNotExists({ abortSignal: deadline() });
                    return q;
                })();
                created.catch(() => (created = undefined));
                return created;
            },
            message: (blobName, blob, url) =>
                encodeLogEventMessage(
                    blobCreatedEvent({
                        blobName,
                        url,
                        eTag: blob.properties.etag,
                        contentLength: blob.properties.contentLength,
                        at: blob.properties.lastModified,
                    }),
                ),
        },
    ];
}
