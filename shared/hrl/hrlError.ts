import { ErrorCode, HvrError } from '../errors';

/**
 * A log that breaks the MS-HRL format. `offset` is the byte offset in the log file of the field at fault,
 * `value` what was found there. Every HRL_* code is non-recoverable: reading the same bytes again gives the same
 * answer, so the disk needs the log re-sent or a resynchronization (HRL_NOT_CLOSED always means resync).
 */
export class HrlError extends HvrError {
    readonly offset?: number;
    readonly value?: unknown;

    constructor(code: ErrorCode, message: string, offset?: number, value?: unknown, details?: Record<string, unknown>) {
        super(code, message, { ...details, offset, value: jsonSafe(value) });
        this.name = 'HrlError';
        this.offset = offset;
        this.value = value;
    }
}

function jsonSafe(value: unknown): unknown {
    return typeof value === 'bigint' ? value.toString() : value;
}

/** `0x0000abcd`: how checksums and magic numbers appear in messages. */
export function hex32(n: number): string {
    return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
