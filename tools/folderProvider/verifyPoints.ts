import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RestError } from '@azure/core-rest-pipeline';
import { BlobServiceClient } from '@azure/storage-blob';
import { REPLICAS_CONTAINER } from '../../shared/contracts/blobNames';
import { deadline } from '../../shared/storage/deadline';
import { ManagementClient } from '../simulator/managementClient';
import { QemuVerdict } from '../simulator/qemuCompare';
import { compareReplicaTwice } from '../simulator/replicaCheck';

/** One disk of one recovery point against the barrier copy its cycle kept. */
export interface PointCheck {
    vmId: string;
    cycleId: string;
    diskId: string;
    equal: boolean;
    problem?: string;
    qemuImg: QemuVerdict;
}

/** A recovery point disk as GET .../recoveryPoints lists it. */
interface PointDisk {
    blobName: string;
    snapshot: string;
}

const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

/**
 * Checks every recovery point of `vmId` whose cycle has a barrier copy (`{barriers}/{vmId}/{cycleId}/`):
 * downloads each disk's snapshot (the point's replica page blob, a fixed VHD) and compares it with the copy,
 * in-process and with qemu-img. Cycles named in `expectCycles` without a point are reported as not equal.
 */
export async function verifyRecoveryPoints(
    api: ManagementClient,
    blob: BlobServiceClient,
    barriersDir: string,
    vmId: string,
    diskIds: string[],
    expectCycles: string[],
    workDir: string,
): Promise<PointCheck[]> {
    const points = await api.recoveryPoints(vmId);
    const checks: PointCheck[] = [];
    await mkdir(workDir, { recursive: true });
    for (const cycleId of expectCycles) {
        const point = points.find((p) => p.properties.cycleId === cycleId);
        const disks = (point?.properties as { disks?: Record<string, PointDisk> } | undefined)?.disks;
        for (const diskId of diskIds) {
            const snap = disks?.[diskId];
            if (!snap) {
                checks.push({
                    vmId,
                    cycleId,
                    diskId,
                    equal: false,
                    problem: 'no recovery point',
                    qemuImg: 'unavailable',
                });
                continue;
            }
            const vhdPath = join(workDir, `${vmId}.${cycleId}.${diskId}.vhd`);
            try {
                await blob
                    .getContainerClient(REPLICAS_CONTAINER)
                    .getBlobClient(snap.blobName)
                    .withSnapshot(snap.snapshot)
                    .downloadToFile(vhdPath, 0, undefined, { abortSignal: deadline(DOWNLOAD_TIMEOUT_MS) });
            } catch (err) {
                if (!(err instanceof RestError && err.statusCode === 404)) throw err;
                checks.push({
                    vmId,
                    cycleId,
                    diskId,
                    equal: false,
                    problem: `snapshot ${snap.snapshot} of ${snap.blobName} does not exist; ${await pointNow(api, vmId, cycleId)}`,
                    qemuImg: 'unavailable',
                });
                continue;
            }
            const rawPath = join(barriersDir, vmId, cycleId, `${diskId}.raw`);
            checks.push({ vmId, cycleId, diskId, ...(await compareReplicaTwice(rawPath, vhdPath)) });
            await rm(vhdPath, { force: true });
        }
    }
    return checks;
}

/** What the API says of a point whose snapshot was missing: whether it was removed meanwhile or names a lost one. */
async function pointNow(api: ManagementClient, vmId: string, cycleId: string): Promise<string> {
    const now = (await api.recoveryPoints(vmId)).find((p) => p.properties.cycleId === cycleId);
    return now ? `the point is still listed: ${JSON.stringify(now.properties)}` : 'the point is no longer listed';
}
