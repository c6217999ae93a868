import { HvrError } from '../errors';
import { ReplicationPolicy } from '../policy/replicationPolicy';
import { getPolicy } from '../state/policies';
import { getProtectedItem, StateScope } from '../state/protectedItems';
import { SNAPSHOT_IMMUTABILITY_MODES, SnapshotImmutability } from './pointProtection';
import { RetentionPolicy } from './retentionSchedule';

/** The retention a policy means for its VMs' recovery points. */
export function retentionOfPolicy(policy: ReplicationPolicy): RetentionPolicy {
    const retention: RetentionPolicy = {
        retentionHours: policy.recoveryPointRetentionHours,
        appConsistentFrequencyHours: policy.appConsistentSnapshotFrequencyHours,
    };
    if (policy.retention) {
        const { minimumRetentionDays, ...tiers } = policy.retention;
        retention.tiers = tiers;
        retention.minimumRetentionDays = minimumRetentionDays;
    }
    return retention;
}

/** The VM's retention from its policy; undefined (the default) when the VM or its policy is gone. */
export async function retentionOfVm(scope: StateScope, vmId: string): Promise<RetentionPolicy | undefined> {
    const item = await getProtectedItem(scope, vmId);
    if (!item) return undefined;
    const policy = await getPolicy(scope, item.policyName);
    return policy ? retentionOfPolicy(policy) : undefined;
}

/** RECOVERY_POINT_IMMUTABILITY: Locked, Unlocked or None (default None: the hold is the app's alone). */
export function snapshotImmutabilityFromEnv(env: NodeJS.ProcessEnv = process.env): SnapshotImmutability {
    const value = env.RECOVERY_POINT_IMMUTABILITY ?? 'None';
    if (!SNAPSHOT_IMMUTABILITY_MODES.includes(value as SnapshotImmutability)) {
        throw new HvrError(
            'CONFIG_MISSING',
            `The app setting RECOVERY_POINT_IMMUTABILITY is ${JSON.stringify(value)}; it must be one of ` +
                `${SNAPSHOT_IMMUTABILITY_MODES.join(', ')}.`,
            { setting: 'RECOVERY_POINT_IMMUTABILITY' },
        );
    }
    return value as SnapshotImmutability;
}
