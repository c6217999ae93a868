import { RestError } from '@azure/core-rest-pipeline';
import { PageBlobClient } from '@azure/storage-blob';
import { HvrError } from '../errors';
import { deadline } from '../storage/deadline';
import { MAX_PUT_PAGE_BYTES, PAGE_BYTES } from './writePlan';

/** Counts of the calls a merge made, for its metrics. */
export interface PageWriteCounters {
    putPageCalls: number;
    clearPagesCalls: number;
    bytesPut: number;
    bytesCleared: number;
}

/**
 * Writes pages of one log into a replica disk, enforcing what Azure enforces (Azurite does not all of it):
 * 512-byte alignment, at most 4 MiB per Put Page, and nothing past the virtual size, so the fixed-VHD footer
 * that follows it can never be overwritten. Every call carries `ifSequenceNumberEqualTo`: the count of logs
 * applied before this one, which makes a stale or duplicate writer fail with SEQUENCE_CONDITION_NOT_MET.
 */
export class ReplicaPageWriter {
    readonly counters: PageWriteCounters = { putPageCalls: 0, clearPagesCalls: 0, bytesPut: 0, bytesCleared: 0 };

    constructor(
        private readonly blob: PageBlobClient,
        /** Bytes of disk data; the footer sits at this offset. */
        readonly virtualSize: number,
        /** The blob's sequence number every write requires (n - 1 for log n). */
        readonly expectedSequence: number,
        private readonly timeoutMs?: number,
    ) {}

    private check(offset: number, length: number, maxLength: number): void {
        if (
            !Number.isSafeInteger(offset) ||
            !Number.isSafeInteger(length) ||
            offset < 0 ||
            length <= 0 ||
            offset % PAGE_BYTES !== 0 ||
            length % PAGE_BYTES !== 0
        ) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `Page write of ${length} bytes at ${offset} is not whole 512-byte pages; nothing was written.`,
                { offset, length },
            );
        }
        if (length > maxLength) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `Put Page of ${length} bytes at ${offset} exceeds Azure's 4 MiB limit; nothing was written.`,
                { offset, length },
            );
        }
        if (offset + length > this.virtualSize) {
            throw new HvrError(
                'HRL_ENTRY_OUT_OF_DISK',
                `Page write [${offset}, ${offset + length}) ends past the disk's ${this.virtualSize} bytes ` +
                    `and would overwrite the VHD footer; nothing was written.`,
                { offset, length, virtualSize: this.virtualSize },
            );
        }
    }

    /** Put Page of `data` at `offset`. */
    async putPages(offset: number, data: Buffer, signal?: AbortSignal): Promise<void> {
        this.check(offset, data.length, MAX_PUT_PAGE_BYTES);
        try {
            await this.blob.uploadPages(data, offset, data.length, {
                conditions: { ifSequenceNumberEqualTo: this.expectedSequence },
                abortSignal: deadline(this.timeoutMs, signal),
            });
        } catch (err) {
            throw mapPageError(err, this.expectedSequence);
        }
        this.counters.putPageCalls++;
        this.counters.bytesPut += data.length;
    }

    /** Clear Pages: the range reads as zeros and takes no space (any size, no 4 MiB limit). */
    async clearPages(offset: number, length: number, signal?: AbortSignal): Promise<void> {
        this.check(offset, length, Number.MAX_SAFE_INTEGER);
        try {
            await this.blob.clearPages(offset, length, {
                conditions: { ifSequenceNumberEqualTo: this.expectedSequence },
                abortSignal: deadline(this.timeoutMs, signal),
            });
        } catch (err) {
            throw mapPageError(err, this.expectedSequence);
        }
        this.counters.clearPagesCalls++;
        this.counters.bytesCleared += length;
    }
}

/** True when storage refused a write because the blob's sequence number moved on: someone else applied it. */
export function isSequenceConditionFailure(err: unknown): boolean {
    if (err instanceof HvrError) return err.code === 'SEQUENCE_CONDITION_NOT_MET';
    return (
        err instanceof RestError &&
        err.statusCode === 412 &&
        (err.details as { errorCode?: string } | undefined)?.errorCode === 'SequenceNumberConditionNotMet'
    );
}

function mapPageError(err: unknown, expected: number): unknown {
    if (isSequenceConditionFailure(err)) {
        return new HvrError(
            'SEQUENCE_CONDITION_NOT_MET',
            `The replica's sequence number is no longer ${expected}: another merge applied this log; stopping.`,
            { expectedSequence: expected },
            { cause: err },
        );
    }
    return err;
}
