import { BuiltLog, DiskChain, HrlWriteEntry } from '../../packages/provider-kit/src';
import { SeededRandom } from './random';
import { SourceDisk } from './sourceDisk';
import { DiskWorkload, GuestWrite, MAX_WRITE } from './workload';

export type { BuiltLog } from '../../packages/provider-kit/src';

/**
 * One virtual disk as Hyper-V Replica sees it: the source file, the guest's workload on it, and the disk's log
 * chain (the provider kit's DiskChain, with log ids from the seed so a run is the same every time).
 */
export class SimulatedDisk {
    readonly chain: DiskChain;

    constructor(
        readonly diskId: string,
        readonly isOsDisk: boolean,
        readonly source: SourceDisk,
        private readonly workload: DiskWorkload,
        private readonly random: SeededRandom,
    ) {
        this.chain = new DiskChain(diskId, { vhd2DataWriteGuid: random.guid(), newGuid: () => random.guid() });
    }

    get size(): number {
        return this.source.size;
    }

    /** Position of the last log built (the chain's length so far). */
    get sequence(): number {
        return this.chain.sequence;
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
    buildLog(entries: HrlWriteEntry[], at: Date): BuiltLog {
        return this.chain.buildLog(entries, at);
    }
}
