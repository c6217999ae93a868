import { createCipheriv, createHash } from 'node:crypto';
import { qemuCompare, QemuVerdict } from './qemuCompare';
import { ManagementClient } from './managementClient';
import { SourceDisk } from './sourceDisk';
import { GuestWrite, MAX_WRITE } from './workload';

/** Share of each disk of the attacked VM that the `encrypt` fault rewrites in place with ciphertext. */
export const ENCRYPTED_SHARE = 0.6;

/**
 * The cycle the attack runs in: the middle one, and never the first (a disk needs one ordinary cycle after the
 * initial copy to learn its usual churn). Needs --cycles 2 or more.
 */
export function attackCycleOf(cycles: number): number {
    return Math.max(2, Math.ceil(cycles / 2));
}

/**
 * What ransomware does to a disk in one cycle: reads the first ENCRYPTED_SHARE of it and writes it back encrypted
 * (AES-256-CTR under a key derived from the seed), 1 MiB at a time. The writes are the cycle's log.
 */
export async function encryptInPlace(source: SourceDisk, seed: string): Promise<GuestWrite[]> {
    const key = createHash('sha256').update(`hvr simulate encrypt ${seed}`).digest();
    const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    const end = Math.floor((source.size * ENCRYPTED_SHARE) / 512) * 512;
    const writes: GuestWrite[] = [];
    for (let offset = 0; offset < end; offset += MAX_WRITE) {
        const length = Math.min(MAX_WRITE, end - offset);
        const data = cipher.update(await source.read(offset, length));
        await source.write(offset, data);
        writes.push({ offset, length, zero: false, data });
    }
    return writes;
}

/** The `encrypt` fault's verdict, from the API and the test failover to LatestClean. */
export interface EncryptReport {
    vmId: string;
    attackCycleId: string;
    /** Points the API shows as suspicious churn, per VM (only the attacked VM's attack cycle should be). */
    flagged: { vmId: string; cycleId: string; score: number }[];
    lastCleanRecoveryPointId: string | null;
    expectedCleanCycleId: string;
    /** The drill's disks against the sources as they were before the attack (in-process and qemu-img). */
    failoverDisks: { diskId: string; equal: boolean; qemuImg: QemuVerdict }[];
    ok: boolean;
    problems: string[];
}

interface PointsView {
    lastCleanRecoveryPointId?: string | null;
    value: { name: string; properties: { cycleId: string; churn?: { suspicious: boolean; score: number } | null } }[];
}

/** Reads every VM's points and checks what the attack must have produced, and nothing else. */
export async function checkFlags(
    api: ManagementClient,
    vmIds: readonly string[],
    attacked: { vmId: string; attackCycleId: string; cleanCycleId: string },
): Promise<Pick<EncryptReport, 'flagged' | 'lastCleanRecoveryPointId' | 'problems'>> {
    const flagged: EncryptReport['flagged'] = [];
    const problems: string[] = [];
    let lastClean: string | null = null;
    for (const vmId of vmIds) {
        const view = await api.recoveryPointsView<PointsView>(vmId);
        for (const p of view.value) {
            if (p.properties.churn?.suspicious)
                flagged.push({ vmId, cycleId: p.properties.cycleId, score: p.properties.churn.score });
        }
        if (vmId === attacked.vmId) lastClean = view.lastCleanRecoveryPointId ?? null;
    }
    const expected = `${attacked.vmId}/${attacked.attackCycleId}`;
    if (!flagged.some((f) => `${f.vmId}/${f.cycleId}` === expected))
        problems.push(`the attack's point ${expected} is not flagged`);
    for (const f of flagged) {
        if (`${f.vmId}/${f.cycleId}` !== expected)
            problems.push(`ordinary point ${f.vmId}/${f.cycleId} flagged (score ${f.score})`);
    }
    if (lastClean !== `${attacked.vmId}:${attacked.cleanCycleId}`) {
        problems.push(`last clean point is ${String(lastClean)}; expected ${attacked.vmId}:${attacked.cleanCycleId}`);
    }
    return { flagged, lastCleanRecoveryPointId: lastClean, problems };
}

/** qemu-img's verdict on each failover disk against the clean copy of its source. */
export async function qemuVerdicts(
    disks: { diskId: string; rawPath: string; vhdPath: string; equal: boolean }[],
): Promise<EncryptReport['failoverDisks']> {
    const out: EncryptReport['failoverDisks'] = [];
    for (const d of disks)
        out.push({ diskId: d.diskId, equal: d.equal, qemuImg: (await qemuCompare(d.rawPath, d.vhdPath)).verdict });
    return out;
}
