import { open, stat } from 'node:fs/promises';
import { BlobServiceClient } from '@azure/storage-blob';
import { REPLICAS_CONTAINER } from '../../shared/replica/logBlob';
import { replicaBlobName } from '../../shared/replica/replicaDisk';
import { deadline } from '../../shared/storage/deadline';
import { decodeVhdFooter, roundUpToMiB, VHD_FOOTER_SIZE } from '../../shared/vhd/footer';
import { qemuCompare, QemuVerdict } from './qemuCompare';

/** A replica downloaded whole can take a while for big disks; bounded all the same. */
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;
const COMPARE_CHUNK = 4 * 1024 * 1024;

export interface ReplicaComparison {
    vmId: string;
    diskId: string;
    rawPath: string;
    vhdPath: string;
    equal: boolean;
    /** What differs, for the report (first differing offset, size or footer problem). */
    problem?: string;
    /** qemu-img's verdict, a second implementation of the VHD format (set by `compareReplicaTwice`). */
    qemuImg?: QemuVerdict;
}

/** Downloads `replicas/{vmId}/{diskId}.vhd` (the page blob, data and footer) to `vhdPath`. */
export async function downloadReplica(
    blob: BlobServiceClient,
    vmId: string,
    diskId: string,
    vhdPath: string,
): Promise<void> {
    const client = blob.getContainerClient(REPLICAS_CONTAINER).getBlobClient(replicaBlobName(vmId, diskId));
    await client.downloadToFile(vhdPath, 0, undefined, { abortSignal: deadline(DOWNLOAD_TIMEOUT_MS) });
}

async function readAt(handle: Awaited<ReturnType<typeof open>>, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
    }
    return buf.subarray(0, done);
}

/**
 * Whether the fixed VHD at `vhdPath` holds exactly the raw disk at `rawPath`: its first `size` bytes equal the
 * raw file, the rest of its virtual size (rounded up to a MiB) is zeros, and the last 512 bytes are a valid
 * footer (cookie, checksum, fixed type) whose current size is that virtual size.
 */
export async function compareReplica(rawPath: string, vhdPath: string): Promise<{ equal: boolean; problem?: string }> {
    const size = (await stat(rawPath)).size;
    const virtualSize = roundUpToMiB(size);
    const vhdSize = (await stat(vhdPath)).size;
    if (vhdSize !== virtualSize + VHD_FOOTER_SIZE) {
        return {
            equal: false,
            problem: `replica is ${vhdSize} bytes; expected ${virtualSize + VHD_FOOTER_SIZE} (virtual size + footer)`,
        };
    }
    const raw = await open(rawPath, 'r');
    const vhd = await open(vhdPath, 'r');
    try {
        let footer;
        try {
            footer = decodeVhdFooter(await readAt(vhd, virtualSize, VHD_FOOTER_SIZE));
        } catch (err) {
            return { equal: false, problem: `footer: ${(err as Error).message}` };
        }
        if (footer.currentSize !== virtualSize) {
            return { equal: false, problem: `footer says ${footer.currentSize} bytes; expected ${virtualSize}` };
        }
        for (let offset = 0; offset < virtualSize; offset += COMPARE_CHUNK) {
            const length = Math.min(COMPARE_CHUNK, virtualSize - offset);
            const replica = await readAt(vhd, offset, length);
            const source = offset < size ? await readAt(raw, offset, Math.min(length, size - offset)) : Buffer.alloc(0);
            const expected =
                source.length === length ? source : Buffer.concat([source, Buffer.alloc(length - source.length)]);
            if (!replica.equals(expected)) {
                let at = 0;
                while (at < length && replica[at] === expected[at]) at++;
                return { equal: false, problem: `first difference at byte ${offset + at}` };
            }
        }
        return { equal: true };
    } finally {
        await raw.close();
        await vhd.close();
    }
}

/** `compareReplica`, then qemu-img's opinion: equal only when ours says so and qemu-img does not say it differs. */
export async function compareReplicaTwice(
    rawPath: string,
    vhdPath: string,
): Promise<{ equal: boolean; problem?: string; qemuImg: QemuVerdict }> {
    const ours = await compareReplica(rawPath, vhdPath);
    const qemu = await qemuCompare(rawPath, vhdPath);
    const problem = ours.problem ?? (qemu.verdict === 'differs' ? `qemu-img compare: ${qemu.detail}` : undefined);
    return { equal: ours.equal && qemu.verdict !== 'differs', qemuImg: qemu.verdict, ...(problem ? { problem } : {}) };
}
