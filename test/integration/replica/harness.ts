import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newGuid } from '../../../shared/hrl/guid';
import { HrlWriteEntry, writeHrl } from '../../../shared/hrl/writer';
import { logBlobName, LogMetadata, logMetadataToBlob, REPLICA_LOGS_CONTAINER } from '../../../shared/replica/logBlob';
import { MergeDeps, MergeSettings } from '../../../shared/replica/mergeLog';
import { RecordingNotifier } from '../../../shared/replica/notifier';
import { registerReplicaDisk, replicaPageBlob } from '../../../shared/replica/replicaDisk';
import { StateScope } from '../../../shared/state/protectedItems';
import { connectionFromString, StorageConnection } from '../../../shared/storage/connections';
import { testStorage, uniqueName } from '../../support/azurite';

/** A seeded generator (mulberry32): the same seed gives the same workload on every run. */
export function seededRandom(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

export class FakeClock {
    constructor(private at = new Date('2026-03-01T10:00:00Z')) {}
    now(): Date {
        return new Date(this.at);
    }
    advance(seconds: number): void {
        this.at = new Date(this.at.getTime() + seconds * 1000);
    }
}

const SECTOR = 512;

/**
 * One protected disk on the "on-premises" side: its bytes, and the chain of logs it produces. Every write goes to
 * the source buffer and to the pending cycle's entries, in order, so the replica must end equal to the source.
 */
export class SourceDisk {
    readonly bytes: Buffer;
    lastLogId = '00000000-0000-0000-0000-000000000000';
    sequence = 0;
    vhd2DataWriteGuid = newGuid();
    private pending: HrlWriteEntry[] = [];

    constructor(
        readonly diskId: string,
        readonly virtualSize: number,
    ) {
        this.bytes = Buffer.alloc(virtualSize);
    }

    write(diskOffset: number, data: Buffer): void {
        data.copy(this.bytes, diskOffset);
        this.pending.push({ diskOffset, data: Buffer.from(data) });
    }

    /** A random workload: sizes 512 B..4 MiB (mostly small), overlaps with this cycle's earlier writes, zero runs. */
    randomWrites(rand: () => number, count: number): void {
        const sectors = this.virtualSize / SECTOR;
        for (let i = 0; i < count; i++) {
            const big = rand() < 0.15;
            const lenSectors = big ? 1 + Math.floor(rand() * 8192) : 1 + Math.floor(rand() * 64);
            const len = Math.min(lenSectors, sectors) * SECTOR;
            let offset: number;
            const prev = this.pending[Math.floor(rand() * this.pending.length)];
            if (prev && rand() < 0.3) {
                offset = Math.max(
                    0,
                    prev.diskOffset + Math.floor(((rand() - 0.3) * prev.data.length) / SECTOR) * SECTOR,
                );
            } else {
                offset = Math.floor(rand() * sectors) * SECTOR;
            }
            offset = Math.min(offset, this.virtualSize - len);
            const data = rand() < 0.15 ? Buffer.alloc(len) : randomBytesFrom(rand, len);
            this.write(offset, data);
        }
    }

    /** Closes the cycle: the log of the pending writes, chained to the previous one. */
    cutLog(
        options: {
            dataChecksums?: boolean;
            closed?: boolean;
            previousUniqueId?: string;
            vhd2DataWriteGuid?: string;
        } = {},
    ): {
        log: Buffer;
        logId: string;
        sequence: number;
    } {
        const logId = newGuid();
        const { log } = writeHrl(this.pending, {
            uniqueId: logId,
            previousUniqueId: options.previousUniqueId ?? this.lastLogId,
            vhd2DataWriteGuid: options.vhd2DataWriteGuid ?? this.vhd2DataWriteGuid,
            createdAt: new Date('2026-03-01T10:00:00Z'),
            dataChecksums: options.dataChecksums ?? true,
            closed: options.closed ?? true,
        });
        this.pending = [];
        this.lastLogId = logId;
        this.sequence++;
        return { log, logId, sequence: this.sequence };
    }
}

export function randomBytesFrom(rand: () => number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i += 4) out.writeUInt32LE((rand() * 4294967296) >>> 0, i);
    return out;
}

/** A VM with its disks registered, the merge's dependencies, and helpers to upload and inspect. */
export class ReplicaHarness {
    readonly storage: StorageConnection;
    readonly scope: StateScope;
    readonly siteId = uniqueName('site');
    readonly vmId = uniqueName('vm');
    readonly clock = new FakeClock();
    readonly notifier = new RecordingNotifier();
    readonly settings: MergeSettings = {
        concurrency: 4,
        gapMinSeconds: 600,
        callTimeoutMs: 30_000,
        readBytes: 1024 * 1024,
        timeBudgetSeconds: 600,
    };
    readonly disks = new Map<string, SourceDisk>();

    /** On the run's shared Azurite, or on the storage of `connectionString` (a test's own Azurite). */
    constructor(connectionString?: string) {
        this.storage = connectionString ? connectionFromString(connectionString) : testStorage();
        this.scope = { conn: this.storage, tablePrefix: uniqueName('t') };
    }

    deps(overrides: Partial<MergeDeps> = {}): MergeDeps {
        return { scope: this.scope, notifier: this.notifier, clock: this.clock, settings: this.settings, ...overrides };
    }

    async addDisk(diskId: string, virtualSize: number): Promise<SourceDisk> {
        await this.storage.blob.getContainerClient(REPLICA_LOGS_CONTAINER).createIfNotExists();
        await registerReplicaDisk(this.scope, {
            siteId: this.siteId,
            vmId: this.vmId,
            diskId,
            sizeBytes: virtualSize,
            createdAt: this.clock.now(),
        });
        const disk = new SourceDisk(diskId, virtualSize);
        this.disks.set(diskId, disk);
        return disk;
    }

    logName(diskId: string, sequence: number, logId: string): string {
        return logBlobName({ siteId: this.siteId, vmId: this.vmId, diskId, sequence, logId });
    }

    async upload(
        diskId: string,
        cut: { log: Buffer; logId: string; sequence: number },
        meta: Partial<LogMetadata> = {},
    ): Promise<string> {
        const name = this.logName(diskId, cut.sequence, cut.logId);
        await this.storage.blob
            .getContainerClient(REPLICA_LOGS_CONTAINER)
            .getBlockBlobClient(name)
            .uploadData(cut.log, { metadata: logMetadataToBlob(meta) });
        return name;
    }

    async replicaBytes(diskId: string, snapshot?: string): Promise<Buffer> {
        let page = replicaPageBlob(this.storage.blob, `${this.vmId}/${diskId}.vhd`);
        if (snapshot) page = page.withSnapshot(snapshot);
        return page.downloadToBuffer(0, undefined, { concurrency: 4, blockSize: 8 * 1024 * 1024 });
    }

    async logExists(container: string, name: string): Promise<boolean> {
        return this.storage.blob.getContainerClient(container).getBlobClient(name).exists();
    }
}

const execFileP = promisify(execFile);
export const QEMU_IMG = '/usr/bin/qemu-img';
export const hasQemuImg = existsSync(QEMU_IMG);

/** `qemu-img compare -f raw -F vpc source.raw replica.vhd`: an independent reading of the fixed VHD. */
export async function qemuCompare(source: Buffer, replicaVhd: Buffer): Promise<{ code: number; output: string }> {
    const dir = await mkdtemp(join(tmpdir(), 'hvr-qemu-'));
    try {
        await writeFile(join(dir, 'source.raw'), source);
        await writeFile(join(dir, 'replica.vhd'), replicaVhd);
        try {
            const { stdout } = await execFileP(QEMU_IMG, [
                'compare',
                '-f',
                'raw',
                '-F',
                'vpc',
                join(dir, 'source.raw'),
                join(dir, 'replica.vhd'),
            ]);
            return { code: 0, output: stdout };
        } catch (err) {
            const e = err as { code?: number; stdout?: string; stderr?: string };
            return { code: e.code ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
        }
    } finally {
        await rm(dir, { recursive: true, force: true });
    }
}
