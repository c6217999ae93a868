import { api, List } from '../api';
import { ErrorLine, Loading, StateBadge } from '../components';
import { time } from '../format';
import { usePoll } from '../hooks';

interface Plan {
    name: string;
    properties: {
        description?: string;
        recoveryPoint: string;
        vmCount: number;
        groups: { group: number; vms: { vmId: string }[]; preActions: unknown[]; postActions: unknown[] }[];
        run?: { operation: string; jobId: string; state: string; startedAt: string; endedAt?: string };
        waitingFor?: unknown;
    };
}

/** Recovery plans (when any exist): their groups of VMs, recovery point, and the last run with its job. */
export function PlansView() {
    const plans = usePoll(() => api<List<Plan>>('GET', '/recoveryPlans'), [], 10_000);
    return (
        <section aria-labelledby="plans-title">
            <header class="view-header">
                <h1 id="plans-title">Recovery plans</h1>
                <p class="summary">{plans.data ? `${plans.data.value.length} plans` : ' '}</p>
            </header>
            <ErrorLine error={plans.error} />
            {!plans.data ? (
                <Loading what="recovery plans" />
            ) : plans.data.value.length === 0 ? (
                <p class="empty">No recovery plan.</p>
            ) : (
                <table class="grid" id="plans-table">
                    <thead>
                        <tr>
                            <th scope="col">Plan</th>
                            <th scope="col">Groups (VMs in order)</th>
                            <th scope="col">Recovery point</th>
                            <th scope="col">Last run</th>
                        </tr>
                    </thead>
                    <tbody>
                        {plans.data.value.map((p) => (
                            <tr key={p.name} data-plan={p.name}>
                                <th scope="row">
                                    {p.name}
                                    {p.properties.description && <span class="sub">{p.properties.description}</span>}
                                </th>
                                <td>
                                    {p.properties.groups.map((g) => (
                                        <div key={g.group}>
                                            Group {g.group}:{' '}
                                            {g.vms.map((v, i) => (
                                                <span key={v.vmId}>
                                                    {i > 0 ? ', ' : ''}
                                                    <a href={`#/vm/${encodeURIComponent(v.vmId)}`}>{v.vmId}</a>
                                                </span>
                                            ))}
                                        </div>
                                    ))}
                                </td>
                                <td>{p.properties.recoveryPoint}</td>
                                <td>
                                    {p.properties.run ? (
                                        <>
                                            <a href={`#/jobs/${p.properties.run.jobId}`}>
                                                {p.properties.run.operation}
                                            </a>{' '}
                                            <StateBadge value={p.properties.run.state} />
                                            <span class="sub">{time(p.properties.run.startedAt)}</span>
                                        </>
                                    ) : (
                                        'Never run'
                                    )}
                                </td>
                            </tr>
                        ))}
                    </tbody>
                </table>
            )}
        </section>
    );
}
