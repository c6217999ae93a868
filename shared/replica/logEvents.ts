import { QueueClient } from '@azure/storage-queue';
import { randomUUID } from 'node:crypto';
import { optionalSetting } from '../config';
import { HvrError } from '../errors';
import { credentialFor } from '../storage/connections';
import { deadline } from '../storage/deadline';
import { REPLICA_LOGS_CONTAINER } from './logBlob';

/**
 * The merge's trigger path: Event Grid delivers the replica storage account's BlobCreated events of container
 * `replica-logs` to this Storage queue on the same account; a queue trigger runs the merge. Continuations of a
 * merge whose time budget ran out go to the same queue.
 */
export const REPLICA_LOG_EVENTS_QUEUE = 'replica-log-events';
/** Where the queue trigger moves a message after maxDequeueCount failed tries (the Functions queue extension's rule). */
export const REPLICA_LOG_EVENTS_POISON_QUEUE = `${REPLICA_LOG_EVENTS_QUEUE}-poison`;
/** The app setting naming the replica storage account (blobs, tables, this queue). */
export const REPLICA_STORAGE_SETTING = 'REPLICA_STORAGE';

export const BLOB_CREATED_EVENT = 'Microsoft.Storage.BlobCreated';
/** Our own event type, in the same Event Grid schema: carry on with a log from the progress its disk row records. */
export const MERGE_CONTINUATION_EVENT = 'HyperVReplica.MergeContinuation';

/** An event in the Event Grid schema, as Event Grid writes it to a Storage queue (one event per message). */
export interface LogEvent {
    id: string;
    topic?: string;
    subject: string;
    eventType: string;
    eventTime: string;
    data: { url?: string; api?: string; blobType?: string; contentLength?: number; [key: string]: unknown };
    dataVersion: string;
    metadataVersion?: string;
}

const SUBJECT_PREFIX = `/blobServices/default/containers/${REPLICA_LOGS_CONTAINER}/blobs/`;
/** Storage queue messages are at most 64 KiB; an event is a few hundred bytes. */
const MAX_MESSAGE_CHARS = 64 * 1024;

/** The subject Blob Storage gives a blob's events: `/blobServices/default/containers/{c}/blobs/{name}`. */
export function logEventSubject(blobName: string): string {
    return SUBJECT_PREFIX + blobName;
}

/** A BlobCreated event for an uploaded log, shaped as Event Grid's (the local host emulates Event Grid with it). */
export function blobCreatedEvent(input: {
    blobName: string;
    url: string;
    topic?: string;
    eTag?: string;
    contentLength?: number;
    at: Date;
}): LogEvent {
    return {
        id: randomUUID(),
        topic: input.topic,
        subject: logEventSubject(input.blobName),
        eventType: BLOB_CREATED_EVENT,
        eventTime: input.at.toISOString(),
        data: {
            api: 'PutBlockList',
            eTag: input.eTag,
            contentType: 'application/octet-stream',
            contentLength: input.contentLength,
            blobType: 'BlockBlob',
            url: input.url,
        },
        dataVersion: '',
        metadataVersion: '1',
    };
}

export function continuationEvent(input: { blobName: string; url: string; stepsDone: number; at: Date }): LogEvent {
    return {
        id: randomUUID(),
        subject: logEventSubject(input.blobName),
        eventType: MERGE_CONTINUATION_EVENT,
        eventTime: input.at.toISOString(),
        data: { url: input.url, stepsDone: input.stepsDone },
        dataVersion: '1',
    };
}

/** What a message asks of the merge: a log to merge (or to carry on with), or nothing for another event type. */
export type LogEventRequest =
    { kind: 'merge'; blobName: string; eventType: string; event: LogEvent } | { kind: 'ignore'; why: string };

function fail(why: string): never {
    throw new HvrError('VALIDATION_FAILED', `Replica log event message ${why}.`);
}

/**
 * Reads a queue message as the Functions worker hands it over: the host decodes base64 (host.json
 * `queues.messageEncoding`) and passes JSON as an object; a string or Buffer is parsed here. A message that is
 * not an Event Grid event is VALIDATION_FAILED (not recoverable: after maxDequeueCount tries it goes to poison).
 */
export function parseLogEvent(message: unknown): LogEventRequest {
    let value = message;
    if (Buffer.isBuffer(value)) value = value.toString('utf8');
    if (typeof value === 'string') {
        if (value.length > MAX_MESSAGE_CHARS) fail(`is ${value.length} characters, over ${MAX_MESSAGE_CHARS}`);
        try {
            value = JSON.parse(value) as unknown;
        } catch {
            fail('is not JSON');
        }
    }
    // Event Grid's webhook delivers arrays; a Storage queue destination writes one event per message.
    if (Array.isArray(value)) {
        if (value.length !== 1) fail(`holds ${value.length} events, expected one`);
        value = value[0];
    }
    if (typeof value !== 'object' || value === null) fail('is not an object');
    const e = value as Partial<LogEvent>;
    if (typeof e.eventType !== 'string' || typeof e.subject !== 'string') fail('has no eventType or subject');
    if (e.eventType !== BLOB_CREATED_EVENT && e.eventType !== MERGE_CONTINUATION_EVENT) {
        return { kind: 'ignore', why: `event type ${e.eventType} does not start a merge` };
    }
    if (!e.subject.startsWith(SUBJECT_PREFIX)) {
        return {
            kind: 'ignore',
            why: `subject ${e.subject.slice(0, 300)} is not in container ${REPLICA_LOGS_CONTAINER}`,
        };
    }
    const blobName = e.subject.slice(SUBJECT_PREFIX.length);
    if (blobName === '' || blobName.length > 1024) fail(`names no valid blob (${blobName.length} characters)`);
    return { kind: 'merge', blobName, eventType: e.eventType, event: e as LogEvent };
}

/** The message text as the queue stores it: base64 of the JSON, as Event Grid writes and the trigger decodes. */
export function encodeLogEventMessage(event: LogEvent): string {
    return Buffer.from(JSON.stringify(event), 'utf8').toString('base64');
}

/**
 * The `replica-log-events` queue on the replica storage account: a connection string in `REPLICA_STORAGE`
 * (Azurite), or `REPLICA_STORAGE__queueServiceUri` / `__accountName` with a managed identity in Azure.
 */
export function logEventsQueue(env: NodeJS.ProcessEnv = process.env, setting = REPLICA_STORAGE_SETTING): QueueClient {
    const cs = optionalSetting(setting, env);
    if (cs) {
        return new QueueClient(expandDevStorage(cs), REPLICA_LOG_EVENTS_QUEUE, {
            retryOptions: { maxTries: 4, tryTimeoutInMs: 30_000 },
        });
    }
    const accountName = optionalSetting(`${setting}__accountName`, env);
    const base =
        optionalSetting(`${setting}__queueServiceUri`, env) ??
        (accountName ? `https://${accountName}.queue.core.windows.net` : undefined);
    if (!base) {
        throw new HvrError(
            'CONFIG_MISSING',
            `No queue endpoint for ${setting}: set ${setting} to a connection string, or ${setting}__queueServiceUri ` +
                `(or ${setting}__accountName) with ${setting}__credential=managedidentity.`,
            { setting },
        );
    }
    return new QueueClient(`${base.replace(/\/+$/, '')}/${REPLICA_LOG_EVENTS_QUEUE}`, credentialFor(setting, env));
}

function expandDevStorage(cs: string): string {
    if (cs.trim().toLowerCase() !== 'usedevelopmentstorage=true') return cs;
    return (
        'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;' +
        'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;' +
        'QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;'
    );
}

/** Enqueues a continuation of `blobName`, visible at once. */
export async function enqueueContinuation(
    queue: QueueClient,
    input: { blobName: string; url: string; stepsDone: number; at: Date },
    signal?: AbortSignal,
): Promise<void> {
    await queue.sendMessage(encodeLogEventMessage(continuationEvent(input)), {
        abortSignal: deadline(undefined, signal),
    });
}
