import { HvrError } from '../errors';
import { ProtectedItem } from '../state/protectedItems';

/**
 * What an operator may do next with a protected item, in ASR's names (`allowedOperations` of a replication
 * protected item, values of ReplicationProtectedItemOperation). The API shows them on the item and lists them
 * in every refusal, so an operator told "no" is also told what would work.
 */
export const PROTECTED_ITEM_OPERATIONS = [
    'TestFailover',
    'TestFailoverCleanup',
    'PlannedFailover',
    'UnplannedFailover',
    /** Change recovery point after a failover, before commit (ASR's applyRecoveryPoint). */
    'ChangePit',
    'Commit',
    /** Resynchronize (ASR's "repair replication"). */
    'RepairReplication',
    'DisableProtection',
    /** Planned failover from Azure to on-premises. */
    'Failback',
    /** Re-protect after failback (ASR's "reverse replicate"). */
    'ReverseReplicate',
] as const;

export type ProtectedItemOperation = (typeof PROTECTED_ITEM_OPERATIONS)[number];

/** Test failover states in which a drill's resources may still exist: only its cleanup may follow. */
const DRILL_OPEN = new Set(['TestFailoverCleanupPending', 'TestFailoverFailed', 'TestFailoverCleanupFailed']);

/** The operations the item's states allow (pure). A state where a job is running allows none. */
export function allowedOperations(
    item: Pick<ProtectedItem, 'protectionState' | 'testFailoverState'>,
): ProtectedItemOperation[] {
    const drill = item.testFailoverState ?? 'None';
    switch (item.protectionState) {
        case 'Protected':
            if (drill === 'None') {
                return [
                    'TestFailover',
                    'PlannedFailover',
                    'UnplannedFailover',
                    'RepairReplication',
                    'DisableProtection',
                ];
            }
            return DRILL_OPEN.has(drill) ? ['TestFailoverCleanup', 'DisableProtection'] : [];
        case 'FailedOver':
            return ['ChangePit', 'Commit'];
        case 'FailoverFailed':
            // Replication may already be stopped: only an unplanned failover (no provider needed) can follow.
            return ['UnplannedFailover', 'DisableProtection'];
        case 'FailoverCommitted':
            return ['Failback', 'DisableProtection'];
        case 'FailedBack':
            return ['ReverseReplicate', 'DisableProtection'];
        case 'EnablingFailed':
        case 'InitialReplicationFailed':
        case 'DisablingFailed':
            return ['DisableProtection'];
        default:
            return [];
    }
}

/** One line for a refusal: what is allowed now, or that a running job must finish first. */
export function allowedOperationsLine(item: Pick<ProtectedItem, 'protectionState' | 'testFailoverState'>): string {
    const allowed = allowedOperations(item);
    return allowed.length > 0
        ? `allowed operations: ${allowed.join(', ')}`
        : 'no operation is allowed until the running job ends';
}

/** 409 for an operation the item's state does not allow, naming the state and what is allowed. */
export function operationNotAllowed(
    item: Pick<ProtectedItem, 'vmId' | 'protectionState' | 'protectionStateDescription' | 'testFailoverState'> & {
        testFailoverStateDescription?: string;
    },
    what: string,
): HvrError {
    const drill =
        item.testFailoverState && item.testFailoverState !== 'None'
            ? ` (${item.testFailoverStateDescription?.toLowerCase() ?? item.testFailoverState})`
            : '';
    return new HvrError(
        'CONFLICT',
        `VM ${item.vmId} is ${item.protectionStateDescription.toLowerCase()}${drill}; ${what}; ${allowedOperationsLine(item)}.`,
        { allowedOperations: allowedOperations(item) },
    );
}
