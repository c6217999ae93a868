import { QueueClient } from '@azure/storage-queue';
import { REPLICA_LOGS_CONTAINER } from '../../shared/replica/logBlob';
import {
    blobCreatedEvent,
    encodeLogEventMessage,
    REPLICA_LOG_EVENTS_QUEUE,
    REPLICA_STORAGE_SETTING,
} from '../../shared/replica/logEvents';
import { deadline } from '../../shared/storage/deadline';
import {
    localQueueClient,
    type LocalEventSubscription,
    type RegisteredFunction,
} from '../../packages/functions-local/src';

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
