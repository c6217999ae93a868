import { useState } from 'preact/hooks';
import { Accepted, api, Item, Job, List, RecoveryPoint, ReplicationEvent, RpoHistory } from '../api';
import { adviceFor } from '../advice';
import { ConfirmDialog, ErrorLine, Health, Loading, RecoveryPointTimeline, RpoChart, StateBadge } from '../components';
import { ago, between, bytes, duration, time } from '../format';
import { usePoll } from '../hooks';
import { navigate } from '../router';
import { statusText } from './items';

interface ReplicaDisk {
    name: string;
    properties: {
        virtualSize: number;
        state: string;
        logsApplied: number;
        appliedBytes: number;
        repairing: boolean;
        lastAppliedAt?: string;
        lastCapturedAt?: string;
    };
}

interface VmData {
    item: Item;
    disks: ReplicaDisk[];
    points: RecoveryPoint[];
    rpo: RpoHistory;
    events: ReplicationEvent[];
    jobs: Job[];
}

async function loadVm(vmId: string): Promise<VmData> {
    const id = encodeURIComponent(vmId);
    const [item, disks, points, rpo, events, jobs] = await Promise.all([
        api<Item>('GET', `/replicationProtectedItems/${id}`),
        api<List<ReplicaDisk>>('GET', `/replicationProtectedItems/${id}/replicaDisks`),
        api<List<RecoveryPoint>>('GET', `/replicationProtectedItems/${id}/recoveryPoints`),
        api<RpoHistory>('GET', `/replicationProtectedItems/${id}/rpoHistory?hours=24`),
        api<List<ReplicationEvent>>('GET', `/replicationProtectedItems/${id}/events?top=50`),
        api<List<Job>>('GET', `/replicationJobs?vmId=${id}&top=20`),
    ]);
    return { item, disks: disks.value, points: points.value, rpo, events: events.value, jobs: jobs.value };
}

/** An action the VM's state allows (ASR's allowedOperations), with what the confirmation says and what it calls. */
interface Action {
    operation: string;
    label: string;
    title: string;
    explain: string;
    irreversible?: boolean;
    run: (vmId: string, choice: string) => Promise<Accepted>;
    choosesPoint?: boolean;
}

const post = (vmId: string, action: string, body: unknown = {}) =>
    api<Accepted>('POST', `/replicationProtectedItems/${encodeURIComponent(vmId)}/${action}`, body);

function pointBody(choice: string): unknown {
    if (choice === 'Latest' || choice === 'LatestApplicationConsistent') return { recoveryPoint: { type: choice } };
    return { recoveryPoint: { type: 'Custom', recoveryPointId: choice } };
}

export const ACTIONS: Action[] = [
    {
        operation: 'TestFailover',
        label: 'Test failover',
        title: 'Test failover',
        explain:
            'Builds the VM in Azure from the chosen recovery point in the test (or an isolated) network. Replication goes on; clean the drill up when you have checked it.',
        choosesPoint: true,
        run: (vmId, choice) => post(vmId, 'testFailover', pointBody(choice)),
    },
    {
        operation: 'TestFailoverCleanup',
        label: 'Cleanup test failover',
        title: 'Clean up the test failover',
        explain: 'Deletes the test VM, its disks and network interfaces. The drill then counts as done.',
        run: (vmId) => post(vmId, 'testFailoverCleanup', { comments: 'Cleaned up from the console' }),
    },
    {
        operation: 'PlannedFailover',
        label: 'Planned failover',
        title: 'Planned failover',
        explain:
            'Shuts the VM down on premises, ships its final changes, then starts it in Azure: no data loss. Replication stops.',
        irreversible: true,
        run: (vmId) => post(vmId, 'plannedFailover', {}),
    },
    {
        operation: 'UnplannedFailover',
        label: 'Failover',
        title: 'Failover',
        explain:
            'Starts the VM in Azure from the chosen recovery point, without contacting the site. Data written after that point is lost; replication stops.',
        irreversible: true,
        choosesPoint: true,
        run: (vmId, choice) => post(vmId, 'unplannedFailover', pointBody(choice)),
    },
    {
        operation: 'Commit',
        label: 'Commit',
        title: 'Commit the failover',
        explain:
            'Keeps the VM in Azure on the point it runs from and deletes every other recovery point. This cannot be undone.',
        irreversible: true,
        run: (vmId) => post(vmId, 'failoverCommit', {}),
    },
    {
        operation: 'RepairReplication',
        label: 'Resynchronize',
        title: 'Resynchronize now',
        explain:
            'Compares the replica with the source disk block by block and ships only the differences. The replica is snapshotted first and rolled back if it fails.',
        run: (vmId) => post(vmId, 'resync', {}),
    },
    {
        operation: 'DisableProtection',
        label: 'Disable protection',
        title: 'Disable protection',
        explain: 'Stops replication and deletes the replica disks and every recovery point of this VM.',
        irreversible: true,
        run: (vmId) =>
            api<Accepted>('DELETE', `/replicationProtectedItems/${encodeURIComponent(vmId)}?keepReplica=false`),
    },
];

const RETRY_ENABLE = new Set(['EnablingFailed', 'InitialReplicationFailed']);

/** One VM: actions, health reasons with what to do, disks, RPO over 24 h, recovery points, events and jobs. */
export function VmView({ vmId }: { vmId: string }) {
    const vm = usePoll(() => loadVm(vmId), [vmId]);
    const [open, setOpen] = useState<Action | undefined>(undefined);
    const [choice, setChoice] = useState('Latest');
    const [started, setStarted] = useState<Accepted | undefined>(undefined);
    if (!vm.data) {
        return (
            <section>
                <h1>{vmId}</h1>
                <ErrorLine error={vm.error} />
                {!vm.error && <Loading what={vmId} />}
            </section>
        );
    }
    const { item, disks, points, rpo, events, jobs } = vm.data;
    const p = item.properties;
    const allowed = new Set(p.allowedOperations);
    const enableAgain: Action = {
        operation: 'Enable',
        label: 'Enable protection again',
        title: 'Enable protection again',
        explain: 'Starts a new Enable protection job with the same site, policy and disks.',
        run: (id) =>
            api<Accepted>('PUT', `/replicationProtectedItems/${encodeURIComponent(id)}`, {
                siteId: p.siteId,
                policyName: p.policyName,
                vm: { name: p.vmName, generation: p.generation ?? 2, disks: p.disks },
            }),
    };
    const actions = [...ACTIONS, enableAgain];
    const isAllowed = (a: Action) =>
        a.operation === 'Enable' ? RETRY_ENABLE.has(p.protectionState) : allowed.has(a.operation);
    const descriptionOf = new Map(p.disks.map((d) => [d.diskId, d]));
    const now = vm.loadedAt ?? Date.now();
    return (
        <section aria-labelledby="vm-title">
            <header class="view-header">
                <h1 id="vm-title">
                    {p.vmName} <span class="sub">{item.name}</span>
                </h1>
                <p class="summary">
                    <Health value={p.replicationHealth} /> <span data-testid="vm-status">{statusText(item)}</span> ·
                    site {p.siteId} · policy {p.policyName} · RPO{' '}
                    <span data-testid="vm-rpo">{duration(p.rpoSeconds)}</span> · test failover{' '}
                    <span data-testid="vm-tfo">{p.testFailoverStateDescription ?? 'None'}</span>
                </p>
            </header>
            <div class="actions" role="toolbar" aria-label="Actions">
                {actions.map((a) => (
                    <button
                        key={a.operation}
                        type="button"
                        disabled={!isAllowed(a)}
                        onClick={() => setOpen(a)}
                        data-action={a.operation}
                    >
                        {a.label}
                    </button>
                ))}
            </div>
            <p class="started" aria-live="polite">
                {started?.jobId ? (
                    <>
                        Started job <a href={`#/jobs/${started.jobId}`}>{started.jobId}</a>
                        {started.alreadyRunning ? ' (it was already running)' : ''}.
                    </>
                ) : (
                    ' '
                )}
            </p>
            <ErrorLine error={vm.error} />

            <h2>Health</h2>
            {p.healthReasons.length === 0 ? (
                <p class="empty">No problem reported.</p>
            ) : (
                <ul class="reasons">
                    {p.healthReasons.map((r) => (
                        <li key={r.code} class={`reason ${r.severity.toLowerCase()}`}>
                            <strong>{r.severity}</strong> {r.message}
                            <br />
                            <span class="advice">What to do: {adviceFor(r.code)}</span>
                        </li>
                    ))}
                </ul>
            )}

            <h2>Disks</h2>
            <table class="grid">
                <thead>
                    <tr>
                        <th scope="col">Disk</th>
                        <th scope="col">Size</th>
                        <th scope="col">Replicated</th>
                        <th scope="col">Logs applied</th>
                        <th scope="col">State</th>
                        <th scope="col">Newest data captured</th>
                    </tr>
                </thead>
                <tbody>
                    {p.disks.map((d) => {
                        const r = disks.find((x) => x.name === d.diskId)?.properties;
                        return (
                            <tr key={d.diskId} data-disk={d.diskId}>
                                <th scope="row">
                                    {d.diskId}{' '}
                                    {descriptionOf.get(d.diskId)?.isOsDisk ? <span class="sub">OS disk</span> : null}
                                </th>
                                <td class="num">{bytes(d.sizeBytes)}</td>
                                <td class="num">{bytes(r?.appliedBytes)}</td>
                                <td class="num">{r?.logsApplied ?? '—'}</td>
                                <td>{r ? (r.repairing ? 'Being repaired' : r.state) : 'Not created'}</td>
                                <td>{time(r?.lastCapturedAt)}</td>
                            </tr>
                        );
                    })}
                </tbody>
            </table>

            <h2>RPO, last 24 hours</h2>
            <RpoChart since={rpo.since} until={rpo.until} samples={rpo.value} />

            <h2>Recovery points ({points.length})</h2>
            <RecoveryPointTimeline
                points={points.map((rp) => ({
                    name: rp.name,
                    at: rp.properties.recoveryPointTime,
                    type: rp.properties.recoveryPointType,
                }))}
            />

            <h2>Jobs</h2>
            <JobTable jobs={jobs} now={now} />

            <h2>Events</h2>
            {events.length === 0 ? (
                <p class="empty">No event in the last 72 hours.</p>
            ) : (
                <ul class="events">
                    {events.map((e) => (
                        <li key={e.eventId} class={`event ${e.severity.toLowerCase()}`}>
                            <time dateTime={e.occurredAt}>{time(e.occurredAt)}</time> <strong>{e.kind}</strong>{' '}
                            {e.message}
                        </li>
                    ))}
                </ul>
            )}

            {open && (
                <ConfirmDialog
                    title={`${open.title}: ${p.vmName}`}
                    confirmLabel={open.label}
                    typeToConfirm={open.irreversible ? p.vmName : undefined}
                    onClose={() => setOpen(undefined)}
                    onConfirm={async () => {
                        const accepted = await open.run(item.name, choice);
                        setStarted(accepted);
                        vm.reload();
                        if (accepted.jobId) navigate(`#/jobs/${accepted.jobId}`);
                    }}
                >
                    <p>{open.explain}</p>
                    {open.choosesPoint && (
                        <label>
                            Recovery point
                            <select value={choice} onChange={(e) => setChoice((e.target as HTMLSelectElement).value)}>
                                <option value="Latest">Latest processed (lowest RPO)</option>
                                <option value="LatestApplicationConsistent">Latest app-consistent</option>
                                {points
                                    .slice()
                                    .reverse()
                                    .map((rp) => (
                                        <option key={rp.name} value={rp.name}>
                                            {time(rp.properties.recoveryPointTime)} · {rp.properties.recoveryPointType}
                                        </option>
                                    ))}
                            </select>
                        </label>
                    )}
                    <p class="sub">Last recovery point {ago(p.lastRecoveryPointAt, now)}.</p>
                </ConfirmDialog>
            )}
        </section>
    );
}

/** Jobs as rows: name, VM, state, started, duration, who started it. */
export function JobTable({ jobs, now, showVm = false }: { jobs: Job[]; now: number; showVm?: boolean }) {
    if (jobs.length === 0) return <p class="empty">No job.</p>;
    return (
        <table class="grid jobs" id="jobs-table">
            <thead>
                <tr>
                    <th scope="col">Job</th>
                    {showVm && <th scope="col">VM</th>}
                    <th scope="col">State</th>
                    <th scope="col">Started</th>
                    <th scope="col">Duration</th>
                    <th scope="col">Started by</th>
                </tr>
            </thead>
            <tbody>
                {jobs.map((j) => (
                    <tr key={j.jobId} data-job={j.jobId}>
                        <th scope="row">
                            <a href={`#/jobs/${j.jobId}`}>{j.displayName}</a>
                        </th>
                        {showVm && (
                            <td>
                                <a href={`#/vm/${encodeURIComponent(j.vmId)}`}>{j.vmId}</a>
                            </td>
                        )}
                        <td>
                            <StateBadge value={j.state} />
                        </td>
                        <td>{time(j.startTime ?? j.createdAt)}</td>
                        <td class="num">{between(j.startTime, j.endTime, now)}</td>
                        <td>{j.requestedBy?.name ?? 'the service'}</td>
                    </tr>
                ))}
            </tbody>
        </table>
    );
}
