import { HttpRequest, HttpRequestInit, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { HvrError } from '../shared/errors';
import { TEST_FAILOVER_STATES } from '../shared/failover/states';
import { CANCEL_METHODS, jobActionRefusal } from '../shared/lifecycle/jobControl';
import { lifecycleEvents } from '../shared/lifecycle/instances';
import { ports } from '../shared/ports';
import { getJob, Job, listJobs, updateJob } from '../shared/state/jobs';
import { getProtectedItem, PROTECTION_STATES, stateScope, updateProtectedItem } from '../shared/state/protectedItems';
import { requesterOf } from './apiCaller';
import { failoverAction } from './apiFailover';
import { accepted, isActive, jsonResponse } from './apiHttp';
import { replicationProtectedItem, resyncProtectedItem } from './apiReplicationProtectedItems';

/**
 * Cancel and restart of jobs (`POST /api/replicationJobs/{jobId}/cancel|restart`). Which kinds allow which, and
 * how, is shared/lifecycle/jobControl.ts's; this file carries it out with the durable client.
 */

/** How long a cancel waits for a terminated orchestration to stop before it reports the stop as pending. */
export const TERMINATE_WAIT_MS = 60_000;
const TERMINATE_POLL_MS = 250;

async function requireJob(jobId: string): Promise<Job> {
    const job = await getJob(stateScope(), jobId);
    if (!job) throw new HvrError('NOT_FOUND', `Job ${jobId} does not exist.`, { jobId });
    return job;
}

/** The job an instance runs now, when its status says (its input or custom status carries `jobId`). */
function jobOfStatus(status: df.DurableOrchestrationStatus | undefined): string | undefined {
    const fromInput = (status?.input as { jobId?: unknown } | undefined)?.jobId;
    const fromStatus = (status?.customStatus as { jobId?: unknown } | undefined)?.jobId;
    const jobId = typeof fromStatus === 'string' ? fromStatus : fromInput;
    return typeof jobId === 'string' ? jobId : undefined;
}

async function untilStopped(client: df.DurableClient, instanceId: string): Promise<boolean> {
    const until = Date.now() + TERMINATE_WAIT_MS;
    while (Date.now() < until) {
        if (!(await isActive(client, instanceId))) return true;
        await new Promise((resolve) => setTimeout(resolve, TERMINATE_POLL_MS));
    }
    return false;
}

export async function cancelJob(
    request: HttpRequest,
    context: InvocationContext,
    jobId: string,
): Promise<HttpResponseInit> {
    const job = await requireJob(jobId);
    const refusal = jobActionRefusal(job, 'Cancel');
    if (refusal) throw new HvrError('CONFLICT', refusal, { jobId, state: job.state });
    const instanceId = job.instanceId!;
    const client = df.getClient(context);
    const status = await client.getStatus(instanceId).catch(() => undefined);
    const running = await isActive(client, instanceId);
    const runs = jobOfStatus(status);
    if (!running || (runs !== undefined && runs !== jobId)) {
        throw new HvrError(
            'CONFLICT',
            `Job ${jobId} is ${job.state} but its orchestration ${instanceId} is not running it (${status?.runtimeStatus ?? 'no instance'}); nothing to cancel.`,
            { jobId, instanceId },
        );
    }
    const requester = requesterOf(request);
    const reason = `Cancelled by ${requester.name}.`;
    if (CANCEL_METHODS[job.kind] === 'raiseCancel') {
        // The orchestration rolls back and records Cancelled itself; a job already past its point of no return ends
        // as it would have.
        await client.raiseEvent(instanceId, lifecycleEvents.cancel, reason);
        return accepted(request, jobId, instanceId, { cancelRequested: true });
    }

    await client.terminate(instanceId, reason);
    if (!(await untilStopped(client, instanceId))) {
        throw new HvrError(
            'TIMEOUT',
            `${instanceId} did not stop within ${TERMINATE_WAIT_MS / 1000} s of its termination; cancel again to finish.`,
            { jobId, instanceId },
        );
    }
    const at = ports().clock.now().toISOString();
    const scope = stateScope();
    const ended = await updateJob(scope, jobId, [{ type: 'jobCancelled', at, reason }]);
    if (ended.state !== 'Cancelled') {
        throw new HvrError('CONFLICT', `Job ${jobId} ended ${ended.state} before it could be cancelled.`, { jobId });
    }
    if (job.kind === 'EnableProtection') {
        // Enable again (the item is in a failed enable) or disable: both start from here.
        await updateProtectedItem(
            scope,
            job.vmId,
            (item) =>
                item.currentJobId === jobId && item.protectionState === 'EnablingProtection'
                    ? {
                          protectionState: 'EnablingFailed',
                          protectionStateDescription: PROTECTION_STATES.EnablingFailed,
                          replicationHealth: 'Critical',
                          healthReasons: [
                              {
                                  code: 'NonRecoverableError',
                                  severity: 'Critical',
                                  message: `CANCELLED: enable protection was cancelled by ${requester.name}; enable it again, or disable protection.`,
                                  errorCode: 'CANCELLED',
                              },
                          ],
                      }
                    : undefined,
            at,
        );
        return jsonResponse(200, { jobId, instanceId, state: ended.state });
    }
    return jsonResponse(200, { jobId, instanceId, state: ended.state, ...(await cleanUpDrill(request, context, job)) });
}

/** After a test failover stopped: its cleanup as a job of its own, or (nothing was created yet) the item reset. */
async function cleanUpDrill(
    request: HttpRequest,
    context: InvocationContext,
    job: Job,
): Promise<{ cleanupJobId?: string }> {
    try {
        const response = await failoverAction(
            operationRequest(request, 'POST', `replicationProtectedItems/${job.vmId}/testFailoverCleanup`, {
                params: { vmId: job.vmId, action: 'testFailoverCleanup' },
                body: { comments: `Cleanup of cancelled job ${job.jobId}` },
            }),
            context,
        );
        const cleanupJobId = (response.jsonBody as { jobId?: string } | undefined)?.jobId;
        return cleanupJobId ? { cleanupJobId } : {};
    } catch (err) {
        if (!(err instanceof HvrError) || err.code !== 'CONFLICT') throw err;
        const item = await getProtectedItem(stateScope(), job.vmId);
        if (item?.testFailoverState !== 'TestFailoverInProgress') throw err;
        // Stopped before its plan was recorded: the drill created nothing.
        await updateProtectedItem(
            stateScope(),
            job.vmId,
            (current) =>
                current.testFailoverState === 'TestFailoverInProgress'
                    ? { testFailoverState: 'None', testFailoverStateDescription: TEST_FAILOVER_STATES.None }
                    : undefined,
            ports().clock.now().toISOString(),
        );
        return {};
    }
}

/** A request for another operation, as the caller's (same headers: same credential, same requester). */
function operationRequest(
    original: HttpRequest,
    method: string,
    path: string,
    init: { params: Record<string, string>; query?: Record<string, string>; body?: unknown },
): HttpRequest {
    const url = new URL(original.url);
    const headers: Record<string, string> = {};
    original.headers.forEach((value, name) => {
        if (name !== 'content-length') headers[name] = value;
    });
    const request: HttpRequestInit = {
        method,
        url: `${url.origin}/api/${path}`,
        headers: { ...headers, 'content-type': 'application/json' },
        params: init.params,
        query: init.query ?? {},
    };
    if (init.body !== undefined) request.body = { string: JSON.stringify(init.body) };
    return new HttpRequest(request);
}

/** Restart of a Failed job: the same operation started again through its own route (its own checks). */
export async function restartJob(
    request: HttpRequest,
    context: InvocationContext,
    jobId: string,
): Promise<HttpResponseInit> {
    const job = await requireJob(jobId);
    const refusal = jobActionRefusal(job, 'Restart');
    if (refusal) throw new HvrError('CONFLICT', refusal, { jobId, state: job.state });
    const vmId = job.vmId;
    // Only the latest run of an operation is restarted: an older failure was already followed by another try.
    const newer = (await listJobs(stateScope(), { vmId })).find(
        (j) => j.kind === job.kind && j.jobId !== jobId && j.createdAt >= job.createdAt,
    );
    if (newer) {
        throw new HvrError(
            'CONFLICT',
            `Job ${jobId} was already followed by job ${newer.jobId} (${newer.state}) of the same kind; restart that one if it failed.`,
            { jobId, newerJobId: newer.jobId },
        );
    }
    const itemPath = `replicationProtectedItems/${vmId}`;
    let response: HttpResponseInit;
    switch (job.kind) {
        case 'EnableProtection': {
            const item = await getProtectedItem(stateScope(), vmId);
            if (!item)
                throw new HvrError('CONFLICT', `VM ${vmId} is no longer protected; enable it with its description.`);
            const body = {
                siteId: item.siteId,
                policyName: item.policyName,
                vm: { name: item.vmName, generation: item.generation, disks: item.disks },
            };
            response = await replicationProtectedItem(
                operationRequest(request, 'PUT', itemPath, { params: { vmId }, body }),
                context,
            );
            break;
        }
        case 'DisableProtection': {
            const keepReplica = job.tasks.some((t) => t.name.startsWith('Keeping replica'));
            response = await replicationProtectedItem(
                operationRequest(request, 'DELETE', itemPath, {
                    params: { vmId },
                    query: { keepReplica: String(keepReplica) },
                }),
                context,
            );
            break;
        }
        case 'Resynchronize':
            response = await resyncProtectedItem(
                operationRequest(request, 'POST', `${itemPath}/resync`, { params: { vmId }, body: {} }),
                context,
            );
            break;
        case 'TestFailoverCleanup':
        case 'CommitFailover': {
            const action = job.kind === 'CommitFailover' ? 'failoverCommit' : 'testFailoverCleanup';
            const body = job.kind === 'CommitFailover' ? {} : { comments: `Restart of job ${jobId}` };
            response = await failoverAction(
                operationRequest(request, 'POST', `${itemPath}/${action}`, { params: { vmId, action }, body }),
                context,
            );
            break;
        }
        default:
            throw new HvrError('CONFLICT', `A ${job.displayName} job cannot be restarted.`);
    }
    const answer = (response.jsonBody ?? {}) as Record<string, unknown>;
    return { ...response, jsonBody: { ...answer, restartOf: jobId } };
}
