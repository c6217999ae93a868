import {
    entryChecksum,
    H,
    headerChecksum,
    HRL_HEADER_SIZE,
    MH,
    ME,
    metadataHeaderChecksum,
} from '../../shared/hrl/format';
import { newGuid } from '../../shared/hrl/guid';
import { QUARANTINE_CONTAINER, REPLICA_LOGS_CONTAINER } from '../../shared/replica/logBlob';
import { mergeUploadedLog } from '../../shared/replica/mergeLog';
import { QUARANTINE_METADATA_KEYS } from '../../shared/replica/quarantine';
import { replicaPageBlob } from '../../shared/replica/replicaDisk';
import { getReplicaDisk } from '../../shared/state/disks';
import { ReplicaHarness, seededRandom, SourceDisk } from '../integration/replica/harness';

const MiB = 1024 * 1024;
jest.setTimeout(120_000);

/** A closed, valid log of the next cycle, before it is tampered with. */
type Cut = { log: Buffer; logId: string; sequence: number };

function withHeaderChecksum(log: Buffer): Buffer {
    log.writeUInt32LE(headerChecksum(log), H.checksum);
    return log;
}

/** The last metadata block (MS-HRL: it ends at EOLLocation) and its first entry. */
function lastBlock(log: Buffer): { block: number; entry: number } {
    const eol = Number(log.readBigUInt64LE(H.eolLocation));
    const block = eol - log.readUInt32LE(H.metadataSize);
    return { block, entry: block + 32 };
}

/** Each attack: how the log is made, and the reason and code the merge must quarantine it with. */
const CATALOGUE: [string, (cut: Cut, disk: SourceDisk) => Buffer, string, RegExp][] = [
    ['truncated to its header', (c) => c.log.subarray(0, HRL_HEADER_SIZE), 'InvalidLog', /^HRL_TRUNCATED$/],
    ['truncated to 100 bytes', (c) => c.log.subarray(0, 100), 'InvalidLog', /^HRL_TRUNCATED$/],
    [
        'truncated by its last 1000 bytes',
        (c) => c.log.subarray(0, c.log.length - 1000),
        'InvalidLog',
        /^HRL_TRUNCATED$/,
    ],
    [
        'a header byte changed (bad header checksum)',
        (c) => (c.log.writeUInt8(c.log[H.creatorVersion]! ^ 1, H.creatorVersion), c.log),
        'InvalidLog',
        /^HRL_HEADER_CHECKSUM$/,
    ],
    [
        'a huge TotalMetadataEntries (checksum fixed)',
        (c) => (c.log.writeBigUInt64LE(2n ** 40n, H.totalMetadataEntries), withHeaderChecksum(c.log)),
        'InvalidLog',
        /^HRL_METADATA_COUNT$/,
    ],
    [
        'an EOLLocation beyond the log (checksum fixed)',
        (c) => (c.log.writeBigUInt64LE(2n ** 50n, H.eolLocation), withHeaderChecksum(c.log)),
        'InvalidLog',
        /^HRL_TRUNCATED$/,
    ],
    [
        'a huge ValidEntries in a metadata block (checksum fixed)',
        (c) => {
            const { block } = lastBlock(c.log);
            c.log.writeUInt32LE(0xffffffff, block + MH.validEntries);
            c.log.writeUInt32LE(metadataHeaderChecksum(c.log, block), block + MH.checksum);
            return c.log;
        },
        'InvalidLog',
        /^HRL_METADATA_COUNT$/,
    ],
    [
        'a huge DataLength in an entry (checksum fixed)',
        (c) => {
            const { entry } = lastBlock(c.log);
            c.log.writeUInt32LE(0xfffffe00, entry + ME.dataLength);
            c.log.writeUInt32LE(entryChecksum(c.log, entry), entry + ME.checksum);
            return c.log;
        },
        'InvalidLog',
        /^HRL_(ENTRY_OUT_OF_DISK|DATA_LAYOUT|ENTRY_FIELD)$/,
    ],
    [
        'an entry written beyond the disk (checksum fixed)',
        (c, disk) => {
            const { entry } = lastBlock(c.log);
            c.log.writeBigUInt64LE(BigInt(disk.virtualSize), entry + ME.byteOffset);
            c.log.writeUInt32LE(entryChecksum(c.log, entry), entry + ME.checksum);
            return c.log;
        },
        'InvalidLog',
        /^HRL_ENTRY_OUT_OF_DISK$/,
    ],
    [
        'a metadata entry byte changed (bad entry checksum)',
        (c) => {
            const { entry } = lastBlock(c.log);
            c.log.writeUInt8(c.log[entry + ME.byteOffset + 3]! ^ 1, entry + ME.byteOffset + 3);
            return c.log;
        },
        'InvalidLog',
        /^HRL_(ENTRY_CHECKSUM|METADATA_CHECKSUM)$/,
    ],
    [
        'a data byte changed (bad data checksum)',
        (c) => {
            // The data follows the header and the first metadata block.
            const at = HRL_HEADER_SIZE + c.log.readUInt32LE(H.metadataSize) + 10;
            c.log.writeUInt8(c.log[at]! ^ 0xff, at);
            return c.log;
        },
        'InvalidLog',
        /^HRL_DATA_CHECKSUM$/,
    ],
];

describe('the merge quarantines every malformed log with its reason and changes nothing', () => {
    /** One applied log, then the next cycle's writes pending: the replica, its sequence number and row as they are. */
    async function setup(seed: number) {
        const h = new ReplicaHarness();
        const rand = seededRandom(seed);
        const disk = await h.addDisk('disk0', 1 * MiB);
        disk.randomWrites(rand, 6);
        await mergeUploadedLog(h.deps(), await h.upload('disk0', disk.cutLog()));
        disk.randomWrites(rand, 6);
        const page = replicaPageBlob(h.storage.blob, `${h.vmId}/disk0.vhd`);
        const state = async () => ({
            bytes: await h.replicaBytes('disk0'),
            blobSequenceNumber: (await page.getProperties()).blobSequenceNumber,
            row: (await getReplicaDisk(h.scope, h.vmId, 'disk0'))!.disk,
        });
        return { h, disk, state, before: await state() };
    }

    async function expectQuarantined(
        h: ReplicaHarness,
        name: string,
        reason: string,
        code: RegExp,
        state: () => Promise<{
            bytes: Buffer;
            blobSequenceNumber?: number;
            row: { sequence: number; lastLogId?: string };
        }>,
        before: Awaited<ReturnType<typeof state>>,
    ): Promise<void> {
        const [outcome] = await mergeUploadedLog(h.deps(), name);
        expect(outcome).toMatchObject({ status: 'quarantined', reason });
        expect((outcome as { code: string }).code).toMatch(code);
        const moved = await h.storage.blob.getContainerClient(QUARANTINE_CONTAINER).getBlobClient(name).getProperties();
        expect(moved.metadata?.[QUARANTINE_METADATA_KEYS.reason]).toBe(reason);
        expect(moved.metadata?.[QUARANTINE_METADATA_KEYS.code]).toMatch(code);
        expect(await h.logExists(REPLICA_LOGS_CONTAINER, name)).toBe(false);
        const after = await state();
        expect(after.bytes.equals(before.bytes)).toBe(true);
        expect(after.blobSequenceNumber).toBe(before.blobSequenceNumber);
        expect({ sequence: after.row.sequence, lastLogId: after.row.lastLogId }).toEqual({
            sequence: before.row.sequence,
            lastLogId: before.row.lastLogId,
        });
    }

    it.each(CATALOGUE)('%s', async (_what, tamper, reason, code) => {
        const { h, disk, state, before } = await setup(41);
        const cut = disk.cutLog();
        const log = tamper({ ...cut, log: Buffer.from(cut.log) }, disk);
        await expectQuarantined(h, await h.upload('disk0', { ...cut, log }), reason, code, state, before);
    });

    it('a broken chain (a PreviousUniqueId that is not the last applied log)', async () => {
        const { h, disk, state, before } = await setup(42);
        const cut = disk.cutLog({ previousUniqueId: newGuid() });
        await expectQuarantined(h, await h.upload('disk0', cut), 'ChainGap', /^CHAIN_BROKEN$/, state, before);
    });

    it('a log that was not closed (EOLLocation 0)', async () => {
        const { h, disk, state, before } = await setup(43);
        const cut = disk.cutLog({ closed: false });
        await expectQuarantined(h, await h.upload('disk0', cut), 'LogNotClosed', /^HRL_NOT_CLOSED$/, state, before);
    });
});
