import { HvrError } from '../errors';
import { ID_PATTERN, ID_RULE, INSTANT_PATTERN } from '../contracts/ids';
import { CONSISTENCIES, Consistency, consistencyOfMetadata, LOG_METADATA_KEYS } from '../contracts/uploadMetadata';

// The names are the provider contract's (shared/contracts/blobNames.ts): built and parsed there, side by side.
export {
    logBlobName,
    logBlobPrefix,
    type LogBlobName,
    parseLogBlobName,
    QUARANTINE_CONTAINER,
    REPLICA_LOGS_CONTAINER,
    REPLICAS_CONTAINER,
} from '../contracts/blobNames';
export { LOG_METADATA_KEYS } from '../contracts/uploadMetadata';

/**
 * What the provider tells about a log in its blob metadata (Azure metadata names are case-insensitive
 * C# identifiers; we use lower case):
 * - `cycleid`: the replication cycle the log belongs to (same value on every disk's log of the cycle);
 * - `consistency`: `CrashConsistent` or `AppConsistent` (the deprecated `crash` / `app` read as the same);
 * - `capturedat`: ISO 8601 instant the provider captured the cycle (RPO is measured from it);
 * - `resync`: `true` for a resynchronization log, which starts a new chain.
 */
export interface LogMetadata {
    cycleId?: string;
    consistency: Consistency;
    capturedAt?: string;
    resync: boolean;
}

const CYCLE_ID = new RegExp(ID_PATTERN);
const INSTANT = new RegExp(INSTANT_PATTERN);

/** Reads the provider's metadata; VALIDATION_FAILED for a value that is present but wrong. */
export function parseLogMetadata(metadata: Record<string, string> | undefined): LogMetadata {
    const lower: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata ?? {})) lower[k.toLowerCase()] = v;
    const written = lower[LOG_METADATA_KEYS.consistency];
    const consistency = consistencyOfMetadata(written);
    if (consistency === undefined) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Log metadata consistency="${written}" is not ${CONSISTENCIES.join(' or ')}.`,
        );
    }
    const capturedAt = lower[LOG_METADATA_KEYS.capturedAt];
    if (capturedAt !== undefined && (!INSTANT.test(capturedAt) || Number.isNaN(Date.parse(capturedAt)))) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Log metadata capturedat="${capturedAt}" is not an ISO 8601 UTC instant such as 2026-03-01T10:00:00Z.`,
        );
    }
    const resync = lower[LOG_METADATA_KEYS.resync];
    if (resync !== undefined && resync !== 'true' && resync !== 'false') {
        throw new HvrError('VALIDATION_FAILED', `Log metadata resync="${resync}" is not true or false.`);
    }
    const cycleId = lower[LOG_METADATA_KEYS.cycleId];
    if (cycleId !== undefined && !CYCLE_ID.test(cycleId)) {
        throw new HvrError('VALIDATION_FAILED', `Log metadata cycleid="${cycleId}" must be ${ID_RULE}.`);
    }
    return {
        cycleId,
        consistency,
        capturedAt: capturedAt === undefined ? undefined : new Date(capturedAt).toISOString(),
        resync: resync === 'true',
    };
}

export function logMetadataToBlob(meta: Partial<LogMetadata>): Record<string, string> {
    const out: Record<string, string> = {};
    if (meta.cycleId !== undefined) out[LOG_METADATA_KEYS.cycleId] = meta.cycleId;
    if (meta.consistency !== undefined) out[LOG_METADATA_KEYS.consistency] = meta.consistency;
    if (meta.capturedAt !== undefined) out[LOG_METADATA_KEYS.capturedAt] = meta.capturedAt;
    if (meta.resync) out[LOG_METADATA_KEYS.resync] = 'true';
    return out;
}
