import { useState } from 'preact/hooks';
import { Accepted, api, Job, List } from '../api';
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

/** What each job action does, said in its confirmation (the API decides which a job allows: `actions`). */
const CANCEL_EFFECT: Partial<Record<string, string>> = {
    Resynchronize: 'The resynchronization stops and is rolled back; the VM stays marked for resynchronization.',
    EnableProtection:
        'The enable stops; the VM is left in “Enabling protection failed”, from which you can enable it again or disable protection.',
    TestFailover:
        'The drill stops and its cleanup starts at once as a job of its own, deleting whatever the drill created.',
};

/** One job: its tasks with states and durations, its errors, who started it; restart when that is allowed. */
export function JobView({ jobId }: { jobId: string }) {
    const job = usePoll(() => api<Job>('GET', `/replicationJobs/${encodeURIComponent(jobId)}`), [jobId], 2000);
    const [confirming, setConfirming] = useState<'Cancel' | 'Restart' | undefined>(undefined);
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
    const allows = (action: string) => (j.actions ?? []).includes(action);
    const path = `/replicationJobs/${encodeURIComponent(j.jobId)}`;
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
                <button
                    type="button"
                    data-action="CancelJob"
                    disabled={!allows('Cancel')}
                    onClick={() => setConfirming('Cancel')}
                >
                    Cancel job
                </button>
                <button
                    type="button"
                    data-action="RestartJob"
                    disabled={!allows('Restart')}
                    onClick={() => setConfirming('Restart')}
                >
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
            {confirming === 'Restart' && (
                <ConfirmDialog
                    title={`Restart: ${j.displayName}`}
                    confirmLabel="Restart"
                    onClose={() => setConfirming(undefined)}
                    onConfirm={async () => {
                        const accepted = await api<Accepted>('POST', `${path}/restart`);
                        if (accepted.jobId) navigate(`#/jobs/${accepted.jobId}`);
                        else job.reload();
                    }}
                >
                    <p>Starts the same operation on {j.vmId} again, as a new job.</p>
                </ConfirmDialog>
            )}
            {confirming === 'Cancel' && (
                <ConfirmDialog
                    title={`Cancel: ${j.displayName}`}
                    confirmLabel="Cancel job"
                    onClose={() => setConfirming(undefined)}
                    onConfirm={async () => {
                        const done = await api<{ cleanupJobId?: string }>('POST', `${path}/cancel`);
                        if (done.cleanupJobId) navigate(`#/jobs/${done.cleanupJobId}`);
                        else job.reload();
                    }}
                >
                    <p>
                        Stops this job on {j.vmId}. {CANCEL_EFFECT[j.kind] ?? ''}
                    </p>
                </ConfirmDialog>
            )}
        </section>
    );
}
