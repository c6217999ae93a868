import { AnonymousCredential, BlockBlobClient } from '@azure/storage-blob';
import {
    Consistency,
    CONSISTENCIES,
    deadline,
    HvrError,
    INITIAL_REPLICATION_CYCLE_ID,
    INSTANT,
    LOG_METADATA_KEYS,
    requireContractId,
    UploadGrantItem,
} from './core';

/** What the merge reads of an uploaded log (docs/provider-contract.md, "The upload flow", step 3). */
export interface LogMetadataInput {
    /** The cycle the log closes (the same on every disk's log of the cycle); absent for a log inside one. */
    cycleId?: string;
    /** Default CrashConsistent. */
    consistency?: Consistency;
    /** When the cycle's consistent point was taken; RPO is measured from it. */
    capturedAt: Date;
    /** A resynchronization log. */
    resync?: boolean;
}

/**
 * The blob metadata of one log, with the names and spellings the core owns (shared/contracts/uploadMetadata.ts):
 * lower-case names, `CrashConsistent` / `AppConsistent`, the instant rule. Bad input is refused here, before
 * anything is uploaded, rather than quarantined by the merge later.
 */
export function logMetadata(input: LogMetadataInput): Record<string, string> {
    const consistency = input.consistency ?? 'CrashConsistent';
    if (!(CONSISTENCIES as readonly string[]).includes(consistency)) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `consistency must be one of ${CONSISTENCIES.join(', ')}; got "${consistency}".`,
        );
    }
    if (!(input.capturedAt instanceof Date) || Number.isNaN(input.capturedAt.getTime())) {
        throw new HvrError('VALIDATION_FAILED', 'capturedAt must be a valid date.');
    }
    const capturedAt = input.capturedAt.toISOString();
    if (!INSTANT.test(capturedAt))
        throw new HvrError('VALIDATION_FAILED', `capturedAt ${capturedAt} is not an instant.`);
    if (input.cycleId !== undefined) requireContractId('cycleId', input.cycleId);
    if (input.resync && input.cycleId === INITIAL_REPLICATION_CYCLE_ID) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `a resync log cannot close the "${INITIAL_REPLICATION_CYCLE_ID}" cycle.`,
        );
    }
    return {
        ...(input.cycleId !== undefined ? { [LOG_METADATA_KEYS.cycleId]: input.cycleId } : {}),
        [LOG_METADATA_KEYS.consistency]: consistency,
        [LOG_METADATA_KEYS.capturedAt]: capturedAt,
        [LOG_METADATA_KEYS.resync]: input.resync ? 'true' : 'false',
    };
}

/** Bounds one log's upload (logs of a few MiB locally take a second; over a WAN much longer). */
export const UPLOAD_TIMEOUT_MS = 10 * 60_000;

/** Storage's answer when a grant expired or does not allow what was asked: ask for a new grant. */
export class GrantRefused extends HvrError {
    constructor(
        readonly grant: UploadGrantItem,
        status: number,
    ) {
        super(
            'FORBIDDEN',
            `Storage refused the upload of ${grant.blobPath} (${status}): the grant expired or does not cover it; ` +
                'ask again for the same log (UploadGrantRequest).',
            { status, blobPath: grant.blobPath },
        );
        this.name = 'GrantRefused';
    }
}

/**
 * PUTs one log with its grant's write-only SAS URL as a block blob, the metadata on the request that creates it
 * (the SDK uses Put Blob, or Put Block × n then Put Block List for a large log). A 403 becomes GrantRefused.
 */
export async function uploadLog(
    grant: UploadGrantItem,
    log: Buffer,
    metadata: Record<string, string>,
    timeoutMs: number = UPLOAD_TIMEOUT_MS,
): Promise<void> {
    const blob = new BlockBlobClient(grant.url, new AnonymousCredential());
    try {
        await blob.uploadData(log, { metadata, abortSignal: deadline(timeoutMs) });
    } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 403) throw new GrantRefused(grant, status);
        throw err;
    }
}
