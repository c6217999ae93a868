import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { HvrError } from '../shared/errors';
import { jobActions } from '../shared/lifecycle/jobControl';
import { getJob, Job, JobState, listJobs } from '../shared/state/jobs';
import { stateScope } from '../shared/state/protectedItems';
import { jsonResponse, routeParam, withErrors } from './apiHttp';
import { apiAuthLevel } from './apiCaller';
import { cancelJob, restartJob } from './jobControl';

/** `/api/replicationJobs`: what enable, finalize, disable, resync, failovers and recovery plans did, task by task. */

const JOB_STATES: readonly JobState[] = ['NotStarted', 'InProgress', 'Succeeded', 'Failed', 'Cancelled', 'Suspended'];

export async function replicationJobs(request: HttpRequest): Promise<HttpResponseInit> {
    const vmId = request.query.get('vmId') ?? undefined;
    const state = request.query.get('state') ?? undefined;
    if (state !== undefined && !JOB_STATES.includes(state as JobState)) {
        throw new HvrError('VALIDATION_FAILED', `state must be one of ${JOB_STATES.join(', ')}; got "${state}".`);
    }
    const topRaw = request.query.get('top');
    const top = topRaw === null ? 100 : Number(topRaw);
    if (!Number.isInteger(top) || top < 1 || top > 1000) {
        throw new HvrError('VALIDATION_FAILED', `top must be a whole number from 1 to 1000; got "${topRaw}".`);
    }
    const recoveryPlanName = request.query.get('recoveryPlanName') ?? undefined;
    const filter: { vmId?: string; recoveryPlanName?: string; state?: JobState; top: number } = { top };
    if (vmId !== undefined) filter.vmId = vmId;
    if (recoveryPlanName !== undefined) filter.recoveryPlanName = recoveryPlanName;
    if (state !== undefined) filter.state = state as JobState;
    return jsonResponse(200, { value: (await listJobs(stateScope(), filter)).map(presentJob) });
}

/** A job as the API shows it: the stored job and what an operator may do to it now (shared/lifecycle/jobControl). */
export function presentJob(job: Job): Job & { actions: string[] } {
    return { ...job, actions: jobActions(job) };
}

export async function replicationJob(request: HttpRequest): Promise<HttpResponseInit> {
    const jobId = routeParam(request, 'jobId');
    const job = await getJob(stateScope(), jobId);
    if (!job) throw new HvrError('NOT_FOUND', `Job ${jobId} does not exist.`);
    return jsonResponse(200, presentJob(job));
}

/** `POST …/{jobId}/cancel` and `…/restart` (functions/jobControl.ts). */
export async function replicationJobAction(
    request: HttpRequest,
    context: InvocationContext,
): Promise<HttpResponseInit> {
    const jobId = routeParam(request, 'jobId');
    const action = routeParam(request, 'action');
    return action === 'cancel' ? cancelJob(request, context, jobId) : restartJob(request, context, jobId);
}

/** Function keys, or none behind App Service authentication (apiCaller.ts). */
const API_AUTH_LEVEL = apiAuthLevel();

app.http('apiReplicationJobs', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationJobs',
    handler: withErrors(replicationJobs),
});
app.http('apiReplicationJob', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationJobs/{jobId}',
    handler: withErrors(replicationJob),
});
app.http('apiReplicationJobAction', {
    methods: ['POST'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationJobs/{jobId}/{action:regex(^(cancel|restart)$)}',
    extraInputs: [df.input.durableClient()],
    handler: withErrors(replicationJobAction),
});
