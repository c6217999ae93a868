import { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { randomUUID } from 'node:crypto';
import { requireContractId } from '../shared/contracts/ids';
import { HvrError } from '../shared/errors';
import { allowedOperations, operationNotAllowed } from '../shared/failover/allowedOperations';
import { DATA_SYNC_OPTIONS, DataSyncOption, failbackIdOf } from '../shared/failback/names';
import { failbackProviderTimeoutMinutes } from '../shared/failback/settings';
import { instanceIds } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { createJob, newJob } from '../shared/state/jobs';
import { getPolicy } from '../shared/state/policies';
import { PROTECTION_STATES, ProtectedItem, stateScope } from '../shared/state/protectedItems';
import { FAILBACK, FAILBACK_TASKS, FailbackInput } from '../orchestrations/failback';
import { REPROTECT, REPROTECT_TASKS, ReprotectInput } from '../orchestrations/reprotect';
import { accepted, isActive } from './apiHttp';
import { claimProtectedItem, requireProtectedItem } from './apiItems';
import { requesterOf } from './apiCaller';

/**
 * Failback and re-protect, as ASR calls them: `plannedFailover` with `failoverDirection: "RecoveryToPrimary"` on
 * a VM whose failover is committed (the planned failover from Azure to on-premises), and `reProtect` once it is
 * back (reverse replication). Both answer 202 with the job; apiFailover.ts routes them.
 */

/** ASR's failoverDirection: `PrimaryToRecovery` is a failover to Azure, `RecoveryToPrimary` a failback. */
export const FAILOVER_DIRECTIONS = ['PrimaryToRecovery', 'RecoveryToPrimary'] as const;

/** Whether a plannedFailover body asks for the direction back to premises (VALIDATION_FAILED for an unknown one). */
export function isFailbackRequest(body: Record<string, unknown>): boolean {
    const direction = body.failoverDirection;
    if (direction === undefined) return false;
    if (!(FAILOVER_DIRECTIONS as readonly unknown[]).includes(direction)) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `failoverDirection must be ${FAILOVER_DIRECTIONS.join(' or ')}; got ${JSON.stringify(direction)}.`,
        );
    }
    return direction === 'RecoveryToPrimary';
}

/** `dataSyncOption` (default ForDownTime: only the differences, while the VM in Azure runs). */
export function parseDataSyncOption(value: unknown): DataSyncOption {
    if (value === undefined) return 'ForDownTime';
    if (!(DATA_SYNC_OPTIONS as readonly unknown[]).includes(value)) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `dataSyncOption must be ForDownTime (synchronize the differences before the VM in Azure is shut down) or ` +
                `ForSynchronization (full download after it is shut down); got ${JSON.stringify(value)}.`,
        );
    }
    return value as DataSyncOption;
}

/** Claims the item when `operation` is among its allowed operations. */
function claim(
    vmId: string,
    operation: 'Failback' | 'ReverseReplicate',
    what: string,
    changes: Partial<ProtectedItem>,
): Promise<ProtectedItem> {
    return claimProtectedItem(vmId, (current) => allowedOperations(current).includes(operation), what, changes);
}

export async function startFailback(
    request: HttpRequest,
    context: InvocationContext,
    vmIdParam: string,
    body: Record<string, unknown>,
): Promise<HttpResponseInit> {
    const vmId = requireContractId('vmId', vmIdParam);
    const dataSyncOption = parseDataSyncOption(body.dataSyncOption);
    const providerTimeoutMinutes = failbackProviderTimeoutMinutes();
    const client = df.getClient(context);
    const instanceId = instanceIds.failback(vmId);
    const item = await requireProtectedItem(vmId);
    if (await isActive(client, instanceId)) {
        return accepted(request, item.currentJobId ?? '', instanceId, { alreadyRunning: true });
    }
    const drillId = item.currentDrillId;
    if (!drillId) throw operationNotAllowed(item, 'failback needs a committed failover');
    const jobId = randomUUID();
    const failbackId = failbackIdOf(jobId);
    const previous = await claim(vmId, 'Failback', 'failback needs a VM whose failover is committed', {
        protectionState: 'FailbackInProgress',
        protectionStateDescription: PROTECTION_STATES.FailbackInProgress,
        currentJobId: jobId,
    });
    const at = ports().clock.now().toISOString();
    await createJob(
        stateScope(),
        newJob(jobId, 'Failback', vmId, FAILBACK_TASKS[dataSyncOption], at, instanceId, requesterOf(request)),
    );
    const input: FailbackInput = {
        vmId,
        siteId: item.siteId,
        jobId,
        failbackId,
        drillId,
        dataSyncOption,
        previousState:
            previous.protectionState === 'FailbackInProgress' ? 'FailoverCommitted' : previous.protectionState,
        providerTimeoutMinutes,
    };
    await client.startNew(FAILBACK, { instanceId, input });
    return accepted(request, jobId, instanceId, { failbackId, dataSyncOption });
}

export async function startReprotect(
    request: HttpRequest,
    context: InvocationContext,
    vmIdParam: string,
): Promise<HttpResponseInit> {
    const vmId = requireContractId('vmId', vmIdParam);
    const client = df.getClient(context);
    const instanceId = instanceIds.reprotect(vmId);
    const item = await requireProtectedItem(vmId);
    if (await isActive(client, instanceId)) {
        return accepted(request, item.currentJobId ?? '', instanceId, { alreadyRunning: true });
    }
    const policy = await getPolicy(stateScope(), item.policyName);
    if (!policy) {
        throw new HvrError('PREREQUISITE_FAILED', `The VM's replication policy ${item.policyName} no longer exists.`);
    }
    const jobId = randomUUID();
    await claim(vmId, 'ReverseReplicate', 're-protect needs a VM that failed back to premises', {
        protectionState: 'ReprotectInProgress',
        protectionStateDescription: PROTECTION_STATES.ReprotectInProgress,
        currentJobId: jobId,
    });
    const at = ports().clock.now().toISOString();
    await createJob(
        stateScope(),
        newJob(jobId, 'ReverseReplicate', vmId, REPROTECT_TASKS, at, instanceId, requesterOf(request)),
    );
    const input: ReprotectInput = {
        vmId,
        siteId: item.siteId,
        jobId,
        requestedAt: at,
        diskIds: item.disks.map((d) => d.diskId),
        copyFrequencySeconds: policy.copyFrequencySeconds,
    };
    await client.startNew(REPROTECT, { instanceId, input });
    return accepted(request, jobId, instanceId);
}
