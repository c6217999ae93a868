import type { ReplicaDiskRecord } from '../state/disks';
import type { RecoveryPoint } from '../state/recoveryPoints';
import { decodeRanges, rangeBytes } from './byteRanges';

/**
 * What a VM's recovery points cost in storage. A page-blob snapshot is billed for the pages that differ from the
 * blob after it: the pages changed between it and the next snapshot (or the live replica, for the newest). So a
 * point's unique bytes are the next point's changed bytes, and the VM's points hold the sum of them — the oldest
 * point's own changes are nobody's (what came before it is gone). Exact to the 512-byte page while the ranges fit
 * their table property; an upper bound once widened (byteRanges.encodeRanges).
 */
export interface PointStorage {
    /** Per point (by recovery point id): bytes only its snapshots hold. */
    uniqueBytes: Record<string, number>;
    /** Bytes all the points hold beyond the live replica. */
    bytesHeld: number;
    /** What the same points would cost as full copies of the replica's written data. */
    fullCopyBytes: number;
}

export function pointStorage(points: readonly RecoveryPoint[], disks: readonly ReplicaDiskRecord[]): PointStorage {
    const newestFirst = [...points].sort((a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt));
    const pending = disks.reduce((n, d) => n + rangeBytes(decodeRanges(d.pointChanges)), 0);
    const uniqueBytes: Record<string, number> = {};
    let bytesHeld = 0;
    for (let i = 0; i < newestFirst.length; i++) {
        const unique = i === 0 ? pending : (newestFirst[i - 1]!.changedBytes ?? 0);
        uniqueBytes[newestFirst[i]!.recoveryPointId] = unique;
        bytesHeld += unique;
    }
    const disksSize = disks.reduce((n, d) => n + d.virtualSize, 0);
    return { uniqueBytes, bytesHeld, fullCopyBytes: disksSize * newestFirst.length };
}
