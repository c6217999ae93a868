import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity';
import { integerSetting, optionalSetting } from '../config';
import { HvrError } from '../errors';
import { armFailoverSettings, failoverInfrastructureMode } from '../failover/settings';
import { StorageConnection } from '../storage/connections';
import { ArmAzureVmControl, AzureVmControl, DryRunAzureVmControl } from './azureVm';

/**
 * Failback settings:
 * - FAILOVER_INFRASTRUCTURE (shared with failover): `arm` reads the Azure VM's managed disks through an export
 *   and deallocates it through ARM; `dryrun` reads the failover page blobs.
 * - FAILBACK_GRANT_MINUTES (default 60, 5–1440): how long the provider's read-only link to a difference log, and
 *   its write-only link to a manifest, stay valid.
 * - FAILBACK_PROVIDER_TIMEOUT_MINUTES (default 60, 1–10080): the longest silence of the provider during a
 *   failback before it fails with TIMEOUT.
 */
export function failbackGrantMinutes(env: NodeJS.ProcessEnv = process.env): number {
    return boundedMinutes('FAILBACK_GRANT_MINUTES', 60, 5, 1440, env);
}

export function failbackProviderTimeoutMinutes(env: NodeJS.ProcessEnv = process.env): number {
    return boundedMinutes('FAILBACK_PROVIDER_TIMEOUT_MINUTES', 60, 1, 7 * 1440, env);
}

function boundedMinutes(name: string, fallback: number, min: number, max: number, env: NodeJS.ProcessEnv): number {
    const value = integerSetting(name, fallback, env);
    if (value < min || value > max) {
        throw new HvrError('CONFIG_MISSING', `${name} must be ${min} to ${max} minutes, got ${value}.`, {
            setting: name,
        });
    }
    return value;
}

let current: AzureVmControl | undefined;

/** The process's control of failed-over VMs, built from the settings on first use. */
export function azureVmControl(conn: StorageConnection, env: NodeJS.ProcessEnv = process.env): AzureVmControl {
    if (current) return current;
    if (failoverInfrastructureMode(env) === 'dryrun') {
        current = new DryRunAzureVmControl(conn);
        return current;
    }
    const clientId = optionalSetting('FAILOVER_IDENTITY_CLIENT_ID', env);
    const credential = clientId
        ? new ManagedIdentityCredential({ clientId })
        : optionalSetting('WEBSITE_INSTANCE_ID', env) !== undefined
          ? new ManagedIdentityCredential()
          : new DefaultAzureCredential();
    current = new ArmAzureVmControl(armFailoverSettings(env), { credential });
    return current;
}

/** Replaces the control (tests); returns a function that restores the previous one. */
export function setAzureVmControl(control: AzureVmControl | undefined): () => void {
    const previous = current;
    current = control;
    return () => {
        current = previous;
    };
}
