import type { HealthReasonCode } from '../../shared/health';

/**
 * What to do about each health reason the monitor reports (shared/health.ts owns the codes: a new code does not
 * compile until it has its line here).
 */
export const HEALTH_ADVICE: Record<HealthReasonCode, string> = {
    RpoWarningThresholdExceeded:
        'Logs arrive more slowly than the policy expects. Check the site’s upload bandwidth and the provider’s pending logs (Sites view); it clears by itself once cycles catch up.',
    RpoCriticalThresholdExceeded:
        'No recent cycle was applied. Check that the provider is connected and uploading (Sites view), then the VM’s events for merge errors. A failover now would lose the data since the last recovery point.',
    ProviderHeartbeatMissing:
        'The provider has not reported in. Check the Hyper-V host: the provider service, its network path to Azure (Service Bus) and its clock.',
    ProviderNotConnected:
        'The provider never connected for this VM. Check the provider’s registration with the site key and that it listens on the site’s subscription.',
    ResyncRequired:
        'The replica no longer follows the chain of logs. Start “Resynchronize” now, or let the scheduler run it in the site’s off-hours window.',
    MergeFailing:
        'Uploaded logs are failing to merge and are retried. Look at the VM’s events for the error code; a quarantined log triggers a resynchronization.',
    ProviderReportedError:
        'The provider reported an error for this VM. Its event gives the code; fix it on the Hyper-V host (disk space, VSS, Hyper-V Replica state).',
    NonRecoverableError:
        'A job failed with an error that retrying does not fix. Open the job for its cause; disable and enable protection again if the VM changed.',
    ReplicaBeingRepaired:
        'A log is being applied after an interruption; the replica is consistent again when it completes. No action is needed unless it stays.',
    SuspiciousChurn:
        'A recent cycle rewrote a large share of a disk with random-looking data, as mass encryption does. Check the guest now; if it is an attack, test-fail over to the last clean point (LatestClean) before anything else, and keep its points held.',
};

export function adviceFor(code: string): string {
    return (HEALTH_ADVICE as Record<string, string | undefined>)[code] ?? 'See the VM’s events and its current job.';
}
