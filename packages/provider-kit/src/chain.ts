import { HrlWriteEntry, NIL_GUID, newGuid, writeHrl } from './core';

/** A log ready to upload: its place in the disk's chain and its bytes. */
export interface BuiltLog {
    diskId: string;
    /** Position in the disk's chain, 1-based (the `sequence` of UploadGrantRequest and of the blob name). */
    sequence: number;
    /** The log's MS-HRL UniqueId: the contract's `logId`. */
    logId: string;
    /** The UniqueId of the log before it in the chain (NIL_GUID for the first). */
    previousLogId: string;
    log: Buffer;
    /** Bytes of data the entries carry. */
    dataBytes: number;
    entries: number;
}

/** What a provider must keep durably per disk to continue its chain after a restart. */
export interface DiskChainState {
    diskId: string;
    /** Position of the last log built (0 before the first). */
    sequence: number;
    /** UniqueId of the last log built (NIL_GUID before the first). */
    lastLogId: string;
    /** The same on every log of the chain (a new one means the disk changed outside replication). */
    vhd2DataWriteGuid: string;
}

/**
 * One disk's chain of logs, as the contract requires it (docs/provider-contract.md, "Logs: naming and
 * chaining"): positions from 1 without gaps, each log's PreviousUniqueId the UniqueId of the one before, the
 * same Vhd2DataWriteGuid on every log, the logId the header's UniqueId. The chain advances only by buildLog.
 */
export class DiskChain {
    private state: DiskChainState;

    constructor(
        diskId: string,
        options: { vhd2DataWriteGuid?: string; newGuid?: () => string; resume?: DiskChainState } = {},
    ) {
        this.guid = options.newGuid ?? newGuid;
        if (options.resume && options.resume.diskId !== diskId) {
            throw new RangeError(`chain state of disk ${options.resume.diskId} cannot resume disk ${diskId}`);
        }
        this.state = options.resume
            ? { ...options.resume }
            : { diskId, sequence: 0, lastLogId: NIL_GUID, vhd2DataWriteGuid: options.vhd2DataWriteGuid ?? this.guid() };
    }

    private readonly guid: () => string;

    get diskId(): string {
        return this.state.diskId;
    }
    /** Position of the last log built. */
    get sequence(): number {
        return this.state.sequence;
    }
    get lastLogId(): string {
        return this.state.lastLogId;
    }
    get vhd2DataWriteGuid(): string {
        return this.state.vhd2DataWriteGuid;
    }

    /** What to keep durably (JSON-safe) to resume the chain with `new DiskChain(diskId, { resume })`. */
    snapshot(): DiskChainState {
        return { ...this.state };
    }

    /**
     * The next log of the chain, recording `entries` (offsets and lengths multiples of 512). A log with no
     * entries is allowed by MS-HRL but a cycle must still name every disk; callers pass at least one entry.
     */
    buildLog(entries: HrlWriteEntry[], at: Date, options: { newChain?: boolean } = {}): BuiltLog {
        const logId = this.guid();
        const previousLogId = this.state.lastLogId;
        const { log } = writeHrl(entries, {
            uniqueId: logId,
            previousUniqueId: options.newChain ? NIL_GUID : previousLogId,
            vhd2DataWriteGuid: this.state.vhd2DataWriteGuid,
            createdAt: at,
        });
        this.state = { ...this.state, sequence: this.state.sequence + 1, lastLogId: logId };
        return {
            diskId: this.state.diskId,
            sequence: this.state.sequence,
            logId,
            previousLogId,
            log,
            dataBytes: entries.reduce((n, e) => n + e.data.length, 0),
            entries: entries.length,
        };
    }

    /**
     * A resync log takes the position StartResync names (`resyncSequence`) and starts a new chain: the next
     * log built is that position, with PreviousUniqueId recorded, not checked.
     */
    moveTo(resyncSequence: number): void {
        if (!Number.isSafeInteger(resyncSequence) || resyncSequence < 1) {
            throw new RangeError(`a resync sequence is a whole number ≥ 1; got ${resyncSequence}`);
        }
        this.state = { ...this.state, sequence: resyncSequence - 1 };
    }
}
