import { BlobServiceClient } from '@azure/storage-blob';
import { deadline } from '../storage/deadline';
import { QUARANTINE_CONTAINER, REPLICA_LOGS_CONTAINER } from './logBlob';

/** Why a log was set aside: a ResyncReason when the disk was marked, or Superseded / Misplaced when not. */
export interface QuarantineInfo {
    reason: string;
    /** The error code that decided it (HRL_*, CHAIN_*, ...). */
    code: string;
    detail: string;
    at: string;
}

/** Metadata keys the quarantined copy carries, next to the provider's own. */
export const QUARANTINE_METADATA_KEYS = {
    reason: 'quarantinereason',
    code: 'quarantinecode',
    detail: 'quarantinedetail',
    at: 'quarantinedat',
} as const;

/** Header values must be printable ASCII; keep the detail readable and bounded. */
function metadataValue(text: string): string {
    return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 1024);
}

/**
 * Moves a log from `replica-logs` to `replica-logs-quarantine` under the same name, with the reason in its
 * metadata: copy first, delete after, so the log exists somewhere at every moment. Safe to repeat; a log
 * already gone from `replica-logs` (moved by an earlier try) is left alone.
 */
export async function quarantineLog(blob: BlobServiceClient, name: string, info: QuarantineInfo): Promise<boolean> {
    const source = blob.getContainerClient(REPLICA_LOGS_CONTAINER).getBlobClient(name);
    const quarantine = blob.getContainerClient(QUARANTINE_CONTAINER);
    await quarantine.createIfNotExists({ abortSignal: deadline() });
    let metadata: Record<string, string>;
    try {
        metadata = (await source.getProperties({ abortSignal: deadline() })).metadata ?? {};
    } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return false;
        throw err;
    }
    const target = quarantine.getBlobClient(name);
    const signal = deadline();
    const poller = await target.beginCopyFromURL(source.url, {
        metadata: {
            ...metadata,
            [QUARANTINE_METADATA_KEYS.reason]: metadataValue(info.reason),
            [QUARANTINE_METADATA_KEYS.code]: metadataValue(info.code),
            [QUARANTINE_METADATA_KEYS.detail]: metadataValue(info.detail),
            [QUARANTINE_METADATA_KEYS.at]: info.at,
        },
        abortSignal: signal,
        intervalInMs: 500,
    });
    // The polls carry `signal` (from the options above), so a stuck copy ends at the deadline.
    await poller.pollUntilDone();
    await source.deleteIfExists({ abortSignal: deadline() });
    return true;
}
