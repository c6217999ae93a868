import { DiskBeingRepaired, withReplicaRepairs } from '../health';
import { listDisksBeingApplied, listReplicaDisks } from '../state/disks';
import { ProtectedItem, StateScope } from '../state/protectedItems';

/**
 * Protected items as they are now: the health the monitor recorded, but never Normal while a disk row holds a
 * write intent (the replica is torn until the merge, or its retry, finishes the log). Read from the disk
 * rows at every request, so the state is honest from the first page write to the row update, crash or not.
 */
export async function withRepairState<T extends ProtectedItem>(scope: StateScope, items: T[]): Promise<T[]> {
    if (items.length === 0) return items;
    const byVm = new Map<string, DiskBeingRepaired[]>();
    const disks =
        items.length === 1
            ? (await listReplicaDisks(scope, items[0]!.vmId)).map((r) => r.disk)
            : await listDisksBeingApplied(scope);
    for (const d of disks) {
        if (d.applyingSequence === undefined || d.applyingSequence <= d.sequence) continue;
        const list = byVm.get(d.vmId) ?? [];
        list.push({ diskId: d.diskId, applyingSequence: d.applyingSequence });
        byVm.set(d.vmId, list);
    }
    return items.map((item) => {
        const repairing = byVm.get(item.vmId);
        if (!repairing) return item;
        const shown = withReplicaRepairs({ health: item.replicationHealth, reasons: item.healthReasons }, repairing);
        return { ...item, replicationHealth: shown.health, healthReasons: shown.reasons };
    });
}
