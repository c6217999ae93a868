/**
 * The reasons the local platform refuses something, each a code callers can branch on (the durable HTTP API
 * maps NOT_FOUND, CONFLICT and VALIDATION_FAILED to 404, 409 and 400).
 */
export type LocalPlatformErrorCode =
    'CONFIG_MISSING' | 'CONFLICT' | 'INTERNAL' | 'NOT_FOUND' | 'PREREQUISITE_FAILED' | 'TIMEOUT' | 'VALIDATION_FAILED';

export class LocalPlatformError extends Error {
    readonly code: LocalPlatformErrorCode;
    readonly details?: Record<string, unknown>;

    constructor(
        code: LocalPlatformErrorCode,
        message: string,
        details?: Record<string, unknown>,
        options?: { cause?: unknown },
    ) {
        super(message, options);
        this.name = 'LocalPlatformError';
        this.code = code;
        this.details = details;
    }

    toJSON(): { code: LocalPlatformErrorCode; message: string; details?: Record<string, unknown> } {
        return { code: this.code, message: this.message, details: this.details };
    }
}

/** Turns anything thrown into an Error, so callers can rely on `.message`. */
export function ensureErrorType(err: unknown): Error {
    if (err instanceof Error) return err;
    if (err === undefined || err === null) return new Error('Unknown error');
    if (typeof err === 'object') {
        try {
            return new Error(JSON.stringify(err));
        } catch {
            return new Error(Object.prototype.toString.call(err));
        }
    }
    return new Error(`${err as string | number | boolean | bigint}`);
}
