import { DiskBeingRepaired, withReplicaRepairs } from '../health';
import { listDisksBeingApplied, listReplicaDisks, ReplicaDiskRecord } from '../state/disks';
import { listProtectedItems, ProtectedItem, StateScope } from '../state/protectedItems';
import { suspiciousChurnReason } from './cleanPoint';

/**
 * Protected items as they are now: the health the monitor recorded, Critical for a week after a suspicious point
 * (SuspiciousChurn), and never Normal while a disk row holds a write intent (the replica is torn until the merge, or its retry, finishes the log). Read from the disk
 * rows at every request, so the state is honest from the first page write to the row update, crash or not.
 */
export async function withRepairState<T extends ProtectedItem>(
    scope: StateScope,
    items: T[],
    now: Date = new Date(),
): Promise<T[]> {
    if (items.length === 0) return items;
    const disks =
        items.length === 1
            ? (await listReplicaDisks(scope, items[0]!.vmId)).map((r) => r.disk)
            : await listDisksBeingApplied(scope);
    return shownAsTheyAre(items, disks, now);
}

/**
 * Every protected item (of one site) as it is now: the same as `withRepairState` over `listProtectedItems`, with
 * the two table queries (the items, the disks holding a write intent) made at once rather than one after the
 * other: the listing's answer is one round trip away, whatever the number of items.
 */
export async function listProtectedItemsAsTheyAre(
    scope: StateScope,
    filter: { siteId?: string } = {},
    now: Date = new Date(),
): Promise<ProtectedItem[]> {
    const [items, disks] = await Promise.all([listProtectedItems(scope, filter), listDisksBeingApplied(scope)]);
    return shownAsTheyAre(items, disks, now);
}

function shownAsTheyAre<T extends ProtectedItem>(
    items: T[],
    disks: readonly Pick<ReplicaDiskRecord, 'vmId' | 'diskId' | 'sequence' | 'applyingSequence'>[],
    now: Date,
): T[] {
    const byVm = new Map<string, DiskBeingRepaired[]>();
    for (const d of disks) {
        if (d.applyingSequence === undefined || d.applyingSequence <= d.sequence) continue;
        const list = byVm.get(d.vmId) ?? [];
        list.push({ diskId: d.diskId, applyingSequence: d.applyingSequence });
        byVm.set(d.vmId, list);
    }
    return items.map((item) => {
        const repairing = byVm.get(item.vmId);
        const churn = suspiciousChurnReason(item.suspiciousChurn, now);
        if (!repairing && !churn) return item;
        let shown = { health: item.replicationHealth, reasons: item.healthReasons };
        if (repairing) shown = withReplicaRepairs(shown, repairing);
        if (churn) {
            shown = { health: 'Critical', reasons: [...shown.reasons.filter((r) => r.code !== churn.code), churn] };
        }
        return { ...item, replicationHealth: shown.health, healthReasons: shown.reasons };
    });
}
