import { ManagedIdentityCredential, DefaultAzureCredential } from '@azure/identity';
import { integerSetting, optionalSetting, requireSetting } from '../config';
import { HvrError } from '../errors';
import { ArmFailoverInfrastructure, ArmFailoverSettings } from './armInfrastructure';
import { DryRunFailoverInfrastructure } from './dryRunInfrastructure';
import { FailoverInfrastructure } from './infrastructure';

/**
 * App settings of failover:
 * - FAILOVER_INFRASTRUCTURE: `arm` (create resources in Azure) or `dryrun` (record them only). Required: a
 *   failover that silently creates nothing would be worse than one that refuses to start.
 * - With `arm`: FAILOVER_SUBSCRIPTION_ID, FAILOVER_RESOURCE_GROUP, FAILOVER_LOCATION, FAILOVER_STORAGE_ACCOUNT_ID
 *   (ARM id of the replica storage account), optional FAILOVER_DISK_SKU (Standard_LRS),
 *   FAILOVER_OPERATION_TIMEOUT_MS (20 min), FAILOVER_IDENTITY_CLIENT_ID (a user-assigned managed identity; without
 *   it the system-assigned one, or DefaultAzureCredential locally).
 */
export type FailoverInfrastructureMode = 'arm' | 'dryrun';

/**
 * PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS (default 900): how long a planned failover waits for the provider's
 * FailoverShutdownCompleted, and then again for the final cycle's recovery point. Past it the failover is
 * cancelled (CancelFailoverShutdown) with nothing created in Azure and the VM still running on premises.
 */
export function plannedFailoverShutdownTimeoutSeconds(env: NodeJS.ProcessEnv = process.env): number {
    const seconds = integerSetting('PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS', 900, env);
    if (seconds < 10 || seconds > 24 * 3600) {
        throw new HvrError(
            'CONFIG_MISSING',
            `PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS must be 10 to 86400 seconds, got ${seconds}.`,
            { setting: 'PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS' },
        );
    }
    return seconds;
}

export function failoverInfrastructureMode(env: NodeJS.ProcessEnv = process.env): FailoverInfrastructureMode {
    const mode = requireSetting('FAILOVER_INFRASTRUCTURE', env);
    if (mode !== 'arm' && mode !== 'dryrun') {
        throw new HvrError('CONFIG_MISSING', `FAILOVER_INFRASTRUCTURE must be arm or dryrun, got "${mode}".`, {
            setting: 'FAILOVER_INFRASTRUCTURE',
        });
    }
    return mode;
}

export function armFailoverSettings(env: NodeJS.ProcessEnv = process.env): ArmFailoverSettings {
    return {
        subscriptionId: requireSetting('FAILOVER_SUBSCRIPTION_ID', env),
        resourceGroup: requireSetting('FAILOVER_RESOURCE_GROUP', env),
        location: requireSetting('FAILOVER_LOCATION', env),
        storageAccountId: requireSetting('FAILOVER_STORAGE_ACCOUNT_ID', env),
        diskSku: optionalSetting('FAILOVER_DISK_SKU', env) ?? 'Standard_LRS',
        operationTimeoutMs: integerSetting('FAILOVER_OPERATION_TIMEOUT_MS', 20 * 60_000, env),
    };
}

/** Builds the implementation the settings name (reads them once per call; cache the result). */
export function infrastructureFromSettings(env: NodeJS.ProcessEnv = process.env): FailoverInfrastructure {
    if (failoverInfrastructureMode(env) === 'dryrun') return new DryRunFailoverInfrastructure();
    const settings = armFailoverSettings(env);
    const clientId = optionalSetting('FAILOVER_IDENTITY_CLIENT_ID', env);
    const credential = clientId
        ? new ManagedIdentityCredential({ clientId })
        : optionalSetting('WEBSITE_INSTANCE_ID', env) !== undefined
          ? new ManagedIdentityCredential()
          : new DefaultAzureCredential();
    return new ArmFailoverInfrastructure(settings, { credential });
}

let current: FailoverInfrastructure | undefined;

/** The process's infrastructure: one instance, so the dry run's record is shared by the API and the activities. */
export function failoverInfrastructure(): FailoverInfrastructure {
    current ??= infrastructureFromSettings();
    return current;
}

/** Replaces the infrastructure (tests, the simulator); returns a function that restores the previous one. */
export function setFailoverInfrastructure(infrastructure: FailoverInfrastructure | undefined): () => void {
    const previous = current;
    current = infrastructure;
    return () => {
        current = previous;
    };
}
