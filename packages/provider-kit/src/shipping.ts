import { BuiltLog, DiskChain } from './chain';
import { ProviderChannel, sameLog } from './channel';
import {
    ByteRange,
    Consistency,
    CycleLog,
    HrlWriteEntry,
    HvrError,
    INITIAL_REPLICATION_CYCLE_ID,
    requireContractId,
    UploadGrantItem,
} from './core';
import { GrantRefused, logMetadata, uploadLog } from './uploads';

/** Bytes a log reads: a disk image, a consistent copy of one (the ByteSource shape of shared/resync). */
export interface ByteSource {
    read(offset: number, length: number): Promise<Buffer>;
}

/** One disk's part of a shipment: its chain, where its data is read, and which ranges to ship. */
export interface DiskShipment {
    chain: DiskChain;
    source: ByteSource;
    /** Ranges to ship, in disk order, offsets and lengths whole 512-byte sectors. */
    ranges: ByteRange[];
}

/** The part of the channel a shipment uses (a ProviderChannel; tests pass their own). */
export type ShipChannel = Pick<ProviderChannel, 'send' | 'requestGrants'>;

export interface ShipContext {
    channel: ShipChannel;
    vmId: string;
    /** Longest wait for an UploadGrant. */
    grantTimeoutMs: number;
    /** When the consistent point was taken (the `capturedat` metadata, CycleCompleted.capturedAt). */
    capturedAt: Date;
    consistency?: Consistency;
    /** Data per log at most (a disk's changes beyond it go in several logs); default 8 MiB. */
    maxLogDataBytes?: number;
    /** Puts one log through its grant; uploadLog (Azure Storage, write-only SAS) by default. */
    upload?: (grant: UploadGrantItem, log: Buffer, metadata: Record<string, string>) => Promise<void>;
    /** Each log as it is uploaded (for counters and logs). */
    onUploaded?: (log: BuiltLog, metadata: Record<string, string>) => void;
}

/** A log entry carries at most this much (an MS-HRL entry may be larger; smaller keeps memory flat). */
export const MAX_ENTRY_BYTES = 1024 * 1024;
export const DEFAULT_MAX_LOG_DATA_BYTES = 8 * 1024 * 1024;
const SECTOR = 512;

/**
 * Splits ranges into the entries of successive logs: entries of at most MAX_ENTRY_BYTES, logs of at most
 * `maxLogDataBytes` of data. No range gives one log with the first sector (a cycle names every disk, and a
 * log rewriting a sector with its own content changes nothing).
 */
export function planLogs(ranges: readonly ByteRange[], maxLogDataBytes: number): ByteRange[][] {
    if (!Number.isSafeInteger(maxLogDataBytes) || maxLogDataBytes < SECTOR) {
        throw new RangeError(`maxLogDataBytes must be at least ${SECTOR}; got ${maxLogDataBytes}`);
    }
    const logs: ByteRange[][] = [];
    let current: ByteRange[] = [];
    let bytes = 0;
    for (const range of ranges) {
        if (range.offset % SECTOR !== 0 || range.length % SECTOR !== 0 || range.length <= 0) {
            throw new RangeError(`range ${range.offset}+${range.length} is not whole 512-byte sectors`);
        }
        for (let at = 0; at < range.length;) {
            const room = Math.min(MAX_ENTRY_BYTES, maxLogDataBytes - bytes);
            const length = Math.min(room - (room % SECTOR), range.length - at);
            current.push({ offset: range.offset + at, length });
            bytes += length;
            at += length;
            if (bytes + SECTOR > maxLogDataBytes) {
                logs.push(current);
                current = [];
                bytes = 0;
            }
        }
    }
    if (current.length > 0) logs.push(current);
    if (logs.length === 0) logs.push([{ offset: 0, length: SECTOR }]);
    return logs;
}

async function readEntries(source: ByteSource, ranges: readonly ByteRange[]): Promise<HrlWriteEntry[]> {
    const entries: HrlWriteEntry[] = [];
    for (const r of ranges) entries.push({ diskOffset: r.offset, data: await source.read(r.offset, r.length) });
    return entries;
}

/** Uploads one log with its grant; a refused grant (expired) is asked for again once, for the same log. */
async function uploadWithRetry(
    ctx: ShipContext,
    log: BuiltLog,
    grant: UploadGrantItem,
    metadata: Record<string, string>,
): Promise<void> {
    const upload = ctx.upload ?? uploadLog;
    try {
        await upload(grant, log.log, metadata);
    } catch (err) {
        if (!(err instanceof GrantRefused)) throw err;
        const [again] = await ctx.channel.requestGrants(
            ctx.vmId,
            [{ diskId: log.diskId, sequence: log.sequence, logId: log.logId }],
            ctx.grantTimeoutMs,
        );
        await upload(again!, log.log, metadata);
    }
    ctx.onUploaded?.(log, metadata);
}

/**
 * Ships every disk's ranges as logs of its chain, in rounds: per round the next log of each disk that has one,
 * one UploadGrantRequest for all of them, then the uploads. Only each disk's last log carries `cycleId` (the
 * merge records the point when every disk has applied it). Returns every log shipped, in order.
 */
export async function shipLogs(
    ctx: ShipContext,
    disks: readonly DiskShipment[],
    close: { cycleId?: string; resync?: boolean },
    progress?: (diskId: string, shippedBytes: number, totalBytes: number, last: boolean) => Promise<void>,
): Promise<CycleLog[]> {
    if (close.cycleId !== undefined) requireContractId('cycleId', close.cycleId);
    const plans = disks.map((d) => planLogs(d.ranges, ctx.maxLogDataBytes ?? DEFAULT_MAX_LOG_DATA_BYTES));
    const totals = disks.map((d) => d.ranges.reduce((n, r) => n + r.length, 0));
    const shipped = disks.map(() => 0);
    const rounds = Math.max(...plans.map((p) => p.length));
    const out: CycleLog[] = [];
    for (let round = 0; round < rounds; round++) {
        const logs: { disk: number; log: BuiltLog; last: boolean }[] = [];
        for (const [i, disk] of disks.entries()) {
            const plan = plans[i]![round];
            if (!plan) continue;
            const log = disk.chain.buildLog(await readEntries(disk.source, plan), ctx.capturedAt);
            logs.push({ disk: i, log, last: round === plans[i]!.length - 1 });
        }
        const grants = await ctx.channel.requestGrants(
            ctx.vmId,
            logs.map(({ log }) => ({ diskId: log.diskId, sequence: log.sequence, logId: log.logId })),
            ctx.grantTimeoutMs,
        );
        for (const { disk, log, last } of logs) {
            const grant = grants.find((g) => sameLog(g, log));
            if (!grant)
                throw new HvrError('CONFLICT', `the UploadGrant has no grant for ${log.diskId} log ${log.sequence}`);
            const metadata = logMetadata({
                ...(last && close.cycleId !== undefined ? { cycleId: close.cycleId } : {}),
                consistency: ctx.consistency ?? 'CrashConsistent',
                capturedAt: ctx.capturedAt,
                resync: close.resync ?? false,
            });
            await uploadWithRetry(ctx, log, grant, metadata);
            out.push({ diskId: log.diskId, sequence: log.sequence, logId: log.logId, bytes: log.log.length });
            shipped[disk] = Math.min(totals[disk]!, shipped[disk]! + log.dataBytes);
            await progress?.(log.diskId, shipped[disk], totals[disk]!, last);
        }
    }
    return out;
}

/**
 * Initial replication (docs/provider-contract.md, "Initial replication, step by step"): each disk's data from
 * `sequence` 1 as logs, the last of every disk with cycle id `initial`; InitialReplicationProgress per disk as
 * it goes (whole percents, never down, 100 once a disk's last log is uploaded). No CycleCompleted: the cloud
 * completes initial replication when it has merged every disk's `initial` log.
 */
export async function shipInitialReplication(ctx: ShipContext, disks: readonly DiskShipment[]): Promise<CycleLog[]> {
    for (const d of disks) {
        if (d.chain.sequence !== 0) {
            throw new HvrError(
                'CONFLICT',
                `disk ${d.chain.diskId} already has ${d.chain.sequence} log(s): initial replication starts a chain`,
            );
        }
    }
    const percent: Record<string, number> = Object.fromEntries(disks.map((d) => [d.chain.diskId, 0]));
    await ctx.channel.send({ type: 'InitialReplicationProgress', version: 1, vmId: ctx.vmId, disks: { ...percent } });
    return shipLogs(ctx, disks, { cycleId: INITIAL_REPLICATION_CYCLE_ID }, async (diskId, shipped, total, last) => {
        const now = last || total === 0 ? 100 : Math.min(99, Math.floor((shipped / total) * 100));
        percent[diskId] = Math.max(percent[diskId] ?? 0, now);
        await ctx.channel.send({
            type: 'InitialReplicationProgress',
            version: 1,
            vmId: ctx.vmId,
            disks: { ...percent },
        });
    });
}

/** One delta cycle: every disk's changes since the last cycle, all closing `cycleId`, then CycleCompleted. */
export async function shipCycle(
    ctx: ShipContext,
    cycleId: string,
    disks: readonly DiskShipment[],
): Promise<CycleLog[]> {
    if (cycleId === INITIAL_REPLICATION_CYCLE_ID) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `"${INITIAL_REPLICATION_CYCLE_ID}" is initial replication's cycle id, not a delta cycle's.`,
        );
    }
    const logs = await shipLogs(ctx, disks, { cycleId });
    await ctx.channel.send({
        type: 'CycleCompleted',
        version: 1,
        vmId: ctx.vmId,
        cycleId,
        consistency: ctx.consistency ?? 'CrashConsistent',
        capturedAt: ctx.capturedAt.toISOString(),
        // Per disk the log that closes the cycle (the one with the cycle id).
        logs: disks.map((d) => logs.filter((l) => l.diskId === d.chain.diskId).pop()!),
    });
    return logs;
}
