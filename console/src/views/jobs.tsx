import { useState } from 'preact/hooks';
import { Accepted, api, Item, Job, List } from '../api';
import { ConfirmDialog, ErrorLine, Loading, StateBadge } from '../components';
import { between, time } from '../format';
import { usePoll } from '../hooks';
import { navigate } from '../router';
import { JobTable } from './vm';

const STATES = ['', 'InProgress', 'Succeeded', 'Failed', 'Cancelled', 'NotStarted', 'Suspended'];

/** Jobs, newest first, as GET /api/replicationJobs serves them; filter by state and VM. */
export function JobsView() {
    const [state, setState] = useState('');
    const [vmId, setVmId] = useState('');
    const query = new URLSearchParams({ top: '100' });
    if (state) query.set('state', state);
    if (vmId.trim()) query.set('vmId', vmId.trim());
    const jobs = usePoll(() => api<List<Job>>('GET', `/replicationJobs?${query.toString()}`), [state, vmId]);
    return (
        <section aria-labelledby="jobs-title">
            <header class="view-header">
                <h1 id="jobs-title">Jobs</h1>
                <p class="summary">{jobs.data ? `${jobs.data.value.length} jobs (newest first, at most 100)` : ' '}</p>
            </header>
            <div class="filters" role="search">
                <label>
                    State
                    <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
                        {STATES.map((s) => (
                            <option key={s} value={s}>
                                {s || 'All'}
                            </option>
                        ))}
                    </select>
                </label>
                <label>
                    VM id
                    <input type="search" value={vmId} onChange={(e) => setVmId((e.target as HTMLInputElement).value)} />
                </label>
            </div>
            <ErrorLine error={jobs.error} />
            {jobs.data ? (
                <JobTable jobs={jobs.data.value} now={jobs.loadedAt ?? Date.now()} showVm />
            ) : (
                <Loading what="jobs" />
            )}
        </section>
    );
}

/**
 * Restart, as ASR offers it for a failed job: the same operation started again, when the VM's state allows it
 * (the API decides; a refusal says what is allowed instead).
 */
const RESTART: Partial<Record<string, { operation: string; run: (job: Job, item: Item) => Promise<Accepted> }>> = {
    EnableProtection: {
        operation: 'Enable',
        run: (job, item) =>
            api('PUT', `/replicationProtectedItems/${encodeURIComponent(job.vmId)}`, {
                siteId: item.properties.siteId,
                policyName: item.properties.policyName,
                vm: {
                    name: item.properties.vmName,
                    generation: item.properties.generation ?? 2,
                    disks: item.properties.disks,
                },
            }),
    },
    TestFailoverCleanup: {
        operation: 'TestFailoverCleanup',
        run: (job) =>
            api('POST', `/replicationProtectedItems/${encodeURIComponent(job.vmId)}/testFailoverCleanup`, {
                comments: `Restart of job ${job.jobId}`,
            }),
    },
    Resynchronize: {
        operation: 'RepairReplication',
        run: (job) => api('POST', `/replicationProtectedItems/${encodeURIComponent(job.vmId)}/resync`, {}),
    },
    DisableProtection: {
        operation: 'DisableProtection',
        run: (job) => api('DELETE', `/replicationProtectedItems/${encodeURIComponent(job.vmId)}?keepReplica=false`),
    },
    CommitFailover: {
        operation: 'Commit',
        run: (job) => api('POST', `/replicationProtectedItems/${encodeURIComponent(job.vmId)}/failoverCommit`, {}),
    },
};

const RETRY_ENABLE = new Set(['EnablingFailed', 'InitialReplicationFailed']);

/** One job: its tasks with states and durations, its errors, who started it; restart when that is allowed. */
export function JobView({ jobId }: { jobId: string }) {
    const job = usePoll(() => api<Job>('GET', `/replicationJobs/${encodeURIComponent(jobId)}`), [jobId], 2000);
    const item = usePoll(
        () =>
            job.data
                ? api<Item>('GET', `/replicationProtectedItems/${encodeURIComponent(job.data.vmId)}`)
                : Promise.resolve(undefined),
        [job.data?.vmId, job.data?.state],
        10_000,
    );
    const [confirming, setConfirming] = useState(false);
    if (!job.data) {
        return (
            <section>
                <h1>Job {jobId}</h1>
                <ErrorLine error={job.error} />
                {!job.error && <Loading what="the job" />}
            </section>
        );
    }
    const j = job.data;
    const now = job.loadedAt ?? Date.now();
    const restart = RESTART[j.kind];
    const it = item.data;
    const canRestart =
        j.state === 'Failed' &&
        restart !== undefined &&
        it !== undefined &&
        (restart.operation === 'Enable'
            ? RETRY_ENABLE.has(it.properties.protectionState)
            : it.properties.allowedOperations.includes(restart.operation));
    return (
        <section aria-labelledby="job-title">
            <header class="view-header">
                <h1 id="job-title">{j.displayName}</h1>
                <p class="summary">
                    <StateBadge value={j.state} /> VM <a href={`#/vm/${encodeURIComponent(j.vmId)}`}>{j.vmId}</a> ·
                    started {time(j.startTime ?? j.createdAt)} · duration {between(j.startTime, j.endTime, now)} ·
                    started by <span data-testid="job-requested-by">{j.requestedBy?.name ?? 'the service'}</span>
                </p>
            </header>
            <div class="actions" role="toolbar" aria-label="Job actions">
                <button type="button" disabled={!canRestart} onClick={() => setConfirming(true)}>
                    Restart
                </button>
            </div>
            <ErrorLine error={job.error} />
            <h2>Tasks</h2>
            <table class="grid tasks" id="tasks-table">
                <thead>
                    <tr>
                        <th scope="col">Task</th>
                        <th scope="col">State</th>
                        <th scope="col">Started</th>
                        <th scope="col">Ended</th>
                        <th scope="col">Duration</th>
                        <th scope="col">Detail</th>
                    </tr>
                </thead>
                <tbody>
                    {j.tasks.map((t) => (
                        <tr key={t.name} data-task={t.name} data-state={t.state}>
                            <th scope="row">{t.name}</th>
                            <td>
                                <StateBadge value={t.state} />
                            </td>
                            <td>{time(t.startTime)}</td>
                            <td>{time(t.endTime)}</td>
                            <td class="num">{between(t.startTime, t.endTime, now)}</td>
                            <td>{t.detail ?? ''}</td>
                        </tr>
                    ))}
                </tbody>
            </table>
            <h2>Errors</h2>
            {j.errors.length === 0 ? (
                <p class="empty">None.</p>
            ) : (
                <ul class="errors">
                    {j.errors.map((e, i) => (
                        <li key={`${e.code}${i}`}>
                            <strong>{e.code}</strong> {e.task ? `in “${e.task}”` : ''} at {time(e.at)}: {e.message}{' '}
                            {e.recoverable ? '(recoverable: retried)' : '(not recoverable)'}
                        </li>
                    ))}
                </ul>
            )}
            {confirming && restart && it && (
                <ConfirmDialog
                    title={`Restart: ${j.displayName}`}
                    confirmLabel="Restart"
                    onClose={() => setConfirming(false)}
                    onConfirm={async () => {
                        const accepted = await restart.run(j, it);
                        if (accepted.jobId) navigate(`#/jobs/${accepted.jobId}`);
                    }}
                >
                    <p>Starts the same operation on {j.vmId} again, as a new job.</p>
                </ConfirmDialog>
            )}
        </section>
    );
}
