/**
 * Every error this service raises on purpose carries a code and a class.
 * The class decides what happens next: a recoverable error is retried on the schedule of `retryDelay`,
 * a non-recoverable one stops retrying, sets the item's health to Critical with the reason and fails the job.
 */
export type ErrorCode =
    // MS-HRL log format
    | 'HRL_TRUNCATED'
    | 'HRL_BAD_COOKIE'
    | 'HRL_UNSUPPORTED_VERSION'
    | 'HRL_HEADER_CHECKSUM'
    | 'HRL_HEADER_FIELD'
    | 'HRL_NOT_CLOSED'
    | 'HRL_METADATA_LOCATION'
    | 'HRL_METADATA_CHECKSUM'
    | 'HRL_METADATA_COUNT'
    | 'HRL_ENTRY_CHECKSUM'
    | 'HRL_ENTRY_FIELD'
    | 'HRL_ENTRY_OUT_OF_DISK'
    | 'HRL_DATA_CHECKSUM'
    | 'HRL_DATA_LAYOUT'
    // fixed VHD footer
    | 'VHD_FOOTER_INVALID'
    | 'VHD_SIZE_INVALID'
    // replica disks and the merge
    | 'CHAIN_BROKEN'
    | 'CHAIN_GAP'
    | 'DISK_CHANGED_OFFLINE'
    | 'REPLICA_STATE_INVALID'
    | 'REPLICA_NOT_FOUND'
    | 'SEQUENCE_CONDITION_NOT_MET'
    | 'CONCURRENT_UPDATE'
    // resynchronization: digest manifests, requests and the digest index
    | 'RESYNC_MANIFEST_INVALID'
    | 'RESYNC_REQUEST_INVALID'
    | 'RESYNC_INDEX_INVALID'
    // lifecycle and API
    | 'VALIDATION_FAILED'
    | 'BODY_TOO_LARGE'
    | 'NOT_FOUND'
    | 'CONFLICT'
    | 'VM_NOT_FOUND'
    | 'PREREQUISITE_FAILED'
    | 'UNAUTHORIZED'
    | 'FORBIDDEN'
    | 'TIMEOUT'
    | 'TRANSIENT'
    | 'CONFIG_MISSING'
    // provider channel
    | 'MESSAGE_INVALID'
    | 'MESSAGE_UNKNOWN_TYPE'
    | 'MESSAGE_VERSION'
    | 'MESSAGE_TOO_LARGE'
    | 'MESSAGE_REPLAYED'
    | 'MESSAGE_STALE'
    | 'MESSAGE_NOT_JSON'
    | 'MESSAGE_SESSION'
    | 'MESSAGE_UNSIGNED'
    | 'MESSAGE_SITE_UNKNOWN'
    | 'MESSAGE_KEY_REVOKED'
    | 'MESSAGE_SIGNATURE'
    | 'MESSAGE_VM_UNKNOWN'
    | 'MESSAGE_OTHER_SITE'
    | 'UPLOAD_DISK_UNKNOWN'
    // failback: what the provider reports in FailbackFailed, and the cloud's own check of its result
    | 'GRANT_EXPIRED'
    | 'FAILBACK_APPLY_FAILED'
    | 'FAILBACK_VERIFY_FAILED'
    | 'INTERNAL';

const NON_RECOVERABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
    'HRL_TRUNCATED',
    'HRL_BAD_COOKIE',
    'HRL_UNSUPPORTED_VERSION',
    'HRL_HEADER_CHECKSUM',
    'HRL_HEADER_FIELD',
    'HRL_NOT_CLOSED',
    'HRL_METADATA_LOCATION',
    'HRL_METADATA_CHECKSUM',
    'HRL_METADATA_COUNT',
    'HRL_ENTRY_CHECKSUM',
    'HRL_ENTRY_FIELD',
    'HRL_ENTRY_OUT_OF_DISK',
    'HRL_DATA_CHECKSUM',
    'HRL_DATA_LAYOUT',
    'VHD_FOOTER_INVALID',
    'VHD_SIZE_INVALID',
    'CHAIN_BROKEN',
    'DISK_CHANGED_OFFLINE',
    'REPLICA_STATE_INVALID',
    'RESYNC_MANIFEST_INVALID',
    'RESYNC_REQUEST_INVALID',
    'RESYNC_INDEX_INVALID',
    'VALIDATION_FAILED',
    'BODY_TOO_LARGE',
    'NOT_FOUND',
    'VM_NOT_FOUND',
    'PREREQUISITE_FAILED',
    'UNAUTHORIZED',
    'FORBIDDEN',
    'CONFIG_MISSING',
    'MESSAGE_INVALID',
    'MESSAGE_UNKNOWN_TYPE',
    'MESSAGE_VERSION',
    'MESSAGE_TOO_LARGE',
    'MESSAGE_REPLAYED',
    'MESSAGE_STALE',
    'MESSAGE_NOT_JSON',
    'MESSAGE_SESSION',
    'MESSAGE_UNSIGNED',
    'MESSAGE_SITE_UNKNOWN',
    'MESSAGE_KEY_REVOKED',
    'MESSAGE_SIGNATURE',
    'MESSAGE_VM_UNKNOWN',
    'MESSAGE_OTHER_SITE',
    'UPLOAD_DISK_UNKNOWN',
    'GRANT_EXPIRED',
    'FAILBACK_APPLY_FAILED',
    'FAILBACK_VERIFY_FAILED',
]);

/** Whether an error with this code may succeed if tried again later. */
export function isRecoverableCode(code: ErrorCode): boolean {
    return !NON_RECOVERABLE.has(code);
}

export class HvrError extends Error {
    readonly code: ErrorCode;
    readonly recoverable: boolean;
    readonly details?: Record<string, unknown>;

    constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
        super(message, options);
        this.name = 'HvrError';
        this.code = code;
        this.recoverable = isRecoverableCode(code);
        this.details = details;
    }

    toJSON(): { code: ErrorCode; message: string; recoverable: boolean; details?: Record<string, unknown> } {
        return { code: this.code, message: this.message, recoverable: this.recoverable, details: this.details };
    }
}

/** Turns anything thrown into an Error, so callers can rely on `.message`. */
export function ensureErrorType(err: unknown): Error {
    if (err instanceof Error) return err;
    let message: string;
    if (err === undefined || err === null) {
        message = 'Unknown error';
    } else if (typeof err === 'object') {
        try {
            message = JSON.stringify(err);
        } catch {
            message = Object.prototype.toString.call(err);
        }
    } else {
        message = `${err as string | number | boolean | bigint}`;
    }
    return new Error(message);
}

/** The code of an HvrError, or INTERNAL / TRANSIENT for anything else (unknown failures are retried). */
export function errorCodeOf(err: unknown): ErrorCode {
    return err instanceof HvrError ? err.code : 'TRANSIENT';
}
