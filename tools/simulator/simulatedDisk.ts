import { HrlWriteEntry, NIL_GUID, writeHrl } from '../../shared/hrl';
import { SeededRandom } from './random';
import { SourceDisk } from './sourceDisk';
import { DiskWorkload, GuestWrite, MAX_WRITE } from './workload';

/** A log ready to upload: its place in the disk's chain and its bytes. */
export interface BuiltLog {
    diskId: string;
    sequence: number;
    logId: string;
    previousLogId: string;
    log: Buffer;
    /** Bytes of data the entries carry. */
    dataBytes: number;
    entries: number;
}

/** Initial replication ships at most this much data per log, so no log is held whole for a big disk. */
export const INITIAL_LOG_DATA_BYTES = 8 * 1024 * 1024;

/**
 * One virtual disk as Hyper-V Replica sees it: the source file, the guest's workload on it, and the disk's log
 * chain (the next position and the last log's UniqueId, which the next log names as PreviousUniqueId).
 */
export class SimulatedDisk {
    /** Position of the last log built (the chain's length so far). */
    sequence = 0;
    lastLogId = NIL_GUID;
    readonly vhd2DataWriteGuid: string;

    constructor(
        readonly diskId: string,
        readonly isOsDisk: boolean,
        readonly source: SourceDisk,
        private readonly workload: DiskWorkload,
        private readonly random: SeededRandom,
    ) {
        this.vhd2DataWriteGuid = random.guid();
    }

    get size(): number {
        return this.source.size;
    }

    /** Writes the disk's content at the time protection is enabled. */
    async fillInitialContent(): Promise<number> {
        let bytes = 0;
        for (const extent of this.workload.initialExtents()) {
            for (let at = 0; at < extent.length; at += MAX_WRITE) {
                const length = Math.min(MAX_WRITE, extent.length - at);
                await this.source.write(extent.offset + at, this.random.fill(Buffer.alloc(length)));
                bytes += length;
            }
        }
        return bytes;
    }

    /** Runs one cycle of guest writes on the source and returns them (with their data), in issue order. */
    async runCycle(churnBytes: number): Promise<GuestWrite[]> {
        const writes = this.workload.cycle(churnBytes);
        for (const w of writes) {
            w.data = w.zero ? Buffer.alloc(w.length) : this.random.fill(Buffer.alloc(w.length));
            await this.source.write(w.offset, w.data);
        }
        return writes;
    }

    /** The next log of the chain, recording `entries` (the chain advances). */
    buildLog(entries: HrlWriteEntry[], at: Date, options: { newChain?: boolean } = {}): BuiltLog {
        const logId = this.random.guid();
        const previousLogId = this.lastLogId;
        const { log } = writeHrl(entries, {
            uniqueId: logId,
            previousUniqueId: options.newChain ? NIL_GUID : previousLogId,
            vhd2DataWriteGuid: this.vhd2DataWriteGuid,
            createdAt: at,
        });
        this.sequence++;
        this.lastLogId = logId;
        return {
            diskId: this.diskId,
            sequence: this.sequence,
            logId,
            previousLogId,
            log,
            dataBytes: entries.reduce((n, e) => n + e.data.length, 0),
            entries: entries.length,
        };
    }

    /**
     * Initial replication's logs: entries covering every range of the disk that holds data, at most 1 MiB per
     * entry and INITIAL_LOG_DATA_BYTES per log. Built lazily, one log in memory at a time. A disk with no data
     * still sends one log (a zero sector), so its chain starts.
     */
    async *initialReplicationLogs(at: () => Date): AsyncGenerator<{ log: BuiltLog; shipped: number; total: number }> {
        const ranges = await this.source.dataRanges();
        const total = ranges.reduce((n, r) => n + r.length, 0);
        let shipped = 0;
        let entries: HrlWriteEntry[] = [];
        let pending = 0;
        for (const range of ranges) {
            for (let off = 0; off < range.length; off += MAX_WRITE) {
                const length = Math.min(MAX_WRITE, range.length - off);
                entries.push({
                    diskOffset: range.offset + off,
                    data: await this.source.read(range.offset + off, length),
                });
                pending += length;
                if (pending >= INITIAL_LOG_DATA_BYTES) {
                    shipped += pending;
                    yield { log: this.buildLog(entries, at()), shipped, total };
                    entries = [];
                    pending = 0;
                }
            }
        }
        if (entries.length > 0 || this.sequence === 0) {
            if (entries.length === 0) entries.push({ diskOffset: 0, data: Buffer.alloc(512) });
            shipped += pending;
            yield { log: this.buildLog(entries, at()), shipped, total };
        }
    }
}
