import { api, List, NetworkMapping, Policy, Provider, Site } from '../api';
import { ErrorLine, Loading } from '../components';
import { ago, duration, time } from '../format';
import { usePoll } from '../hooks';

/** A setting as text: strings and numbers as they are, anything else as JSON. */
function text(v: unknown): string {
    if (v === undefined || v === null) return '—';
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

async function loadSites(): Promise<{ site: Site; providers: Provider[] }[]> {
    const sites = await api<List<Site>>('GET', '/sites');
    return Promise.all(
        sites.value.map(async (site) => ({
            site,
            providers: (await api<List<Provider>>('GET', `/sites/${encodeURIComponent(site.siteId)}/providers`)).value,
        })),
    );
}

/** Sites and their providers: kind, host, version, last heartbeat. */
export function SitesView() {
    const sites = usePoll(loadSites, []);
    const now = sites.loadedAt ?? Date.now();
    return (
        <section aria-labelledby="sites-title">
            <header class="view-header">
                <h1 id="sites-title">Sites and providers</h1>
                <p class="summary">{sites.data ? `${sites.data.length} sites` : ' '}</p>
            </header>
            <ErrorLine error={sites.error} />
            {!sites.data ? (
                <Loading what="sites" />
            ) : (
                sites.data.map(({ site, providers }) => (
                    <article key={site.siteId} class="card" data-site={site.siteId}>
                        <h2>
                            {site.name} <span class="sub">{site.siteId}</span>
                        </h2>
                        <p>
                            {site.kind} · time zone {site.timeZone} · registered {time(site.registeredAt)}
                        </p>
                        {providers.length === 0 ? (
                            <p class="empty">No provider has registered yet.</p>
                        ) : (
                            <table class="grid">
                                <thead>
                                    <tr>
                                        <th scope="col">Provider</th>
                                        <th scope="col">Host</th>
                                        <th scope="col">Kind</th>
                                        <th scope="col">Version</th>
                                        <th scope="col">VMs</th>
                                        <th scope="col">Last heartbeat</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {providers.map((p) => (
                                        <tr key={p.providerId} data-provider={p.providerId}>
                                            <th scope="row">{p.providerId}</th>
                                            <td>{p.hostName ?? '—'}</td>
                                            <td>{p.kind ?? '—'}</td>
                                            <td>{p.providerVersion ?? '—'}</td>
                                            <td class="num">{p.vmCount ?? '—'}</td>
                                            <td>
                                                <time dateTime={p.lastHeartbeatAt}>{ago(p.lastHeartbeatAt, now)}</time>
                                            </td>
                                        </tr>
                                    ))}
                                </tbody>
                            </table>
                        )}
                    </article>
                ))
            )}
        </section>
    );
}

const POLICY_FIELDS: { key: string; label: string; show: (v: unknown) => string }[] = [
    { key: 'copyFrequencySeconds', label: 'Copy frequency', show: (v) => duration(v as number) },
    { key: 'recoveryPointRetentionHours', label: 'Retention', show: (v) => `${text(v)} h` },
    {
        key: 'appConsistentSnapshotFrequencyHours',
        label: 'App-consistent every',
        show: (v) => (v ? `${text(v)} h` : 'off'),
    },
    { key: 'initialReplicationStart', label: 'Initial replication', show: (v) => text(v) },
    {
        key: 'offHoursWindow',
        label: 'Off-hours',
        show: (v) => {
            const w = v as { start?: string; end?: string; timeZone?: string } | undefined;
            return w ? `${w.start ?? ''}–${w.end ?? ''}${w.timeZone ? ` ${w.timeZone}` : ''}` : '—';
        },
    },
];

/** Replication policies and their settings. */
export function PoliciesView() {
    const policies = usePoll(() => api<List<Policy>>('GET', '/replicationPolicies'), [], 15_000);
    return (
        <section aria-labelledby="policies-title">
            <header class="view-header">
                <h1 id="policies-title">Replication policies</h1>
                <p class="summary">{policies.data ? `${policies.data.value.length} policies` : ' '}</p>
            </header>
            <ErrorLine error={policies.error} />
            {!policies.data ? (
                <Loading what="policies" />
            ) : (
                <table class="grid" id="policies-table">
                    <thead>
                        <tr>
                            <th scope="col">Policy</th>
                            {POLICY_FIELDS.map((f) => (
                                <th key={f.key} scope="col">
                                    {f.label}
                                </th>
                            ))}
                        </tr>
                    </thead>
                    <tbody>
                        {policies.data.value.map((p) => (
                            <tr key={p.name} data-policy={p.name}>
                                <th scope="row">{p.name}</th>
                                {POLICY_FIELDS.map((f) => (
                                    <td key={f.key}>
                                        {p.properties[f.key] === undefined ? '—' : f.show(p.properties[f.key])}
                                    </td>
                                ))}
                            </tr>
                        ))}
                    </tbody>
                </table>
            )}
        </section>
    );
}

async function loadMappings(): Promise<{ siteId: string; mapping: NetworkMapping }[]> {
    const sites = await api<List<Site>>('GET', '/sites');
    const lists = await Promise.all(
        sites.value.map(async (s) =>
            (
                await api<List<NetworkMapping>>('GET', `/sites/${encodeURIComponent(s.siteId)}/networkMappings`)
            ).value.map((mapping) => ({
                siteId: s.siteId,
                mapping,
            })),
        ),
    );
    return lists.flat();
}

/** Network mappings: each site's source network and the Azure networks a failover and a test failover use. */
export function NetworksView() {
    const mappings = usePoll(loadMappings, [], 15_000);
    return (
        <section aria-labelledby="networks-title">
            <header class="view-header">
                <h1 id="networks-title">Network mappings</h1>
                <p class="summary">{mappings.data ? `${mappings.data.length} mappings` : ' '}</p>
            </header>
            <ErrorLine error={mappings.error} />
            {!mappings.data ? (
                <Loading what="network mappings" />
            ) : mappings.data.length === 0 ? (
                <p class="empty">No network is mapped: failovers use an isolated network.</p>
            ) : (
                <table class="grid" id="networks-table">
                    <thead>
                        <tr>
                            <th scope="col">Site</th>
                            <th scope="col">Source network</th>
                            <th scope="col">Recovery network</th>
                            <th scope="col">Test network</th>
                        </tr>
                    </thead>
                    <tbody>
                        {mappings.data.map(({ siteId, mapping }) => (
                            <tr key={`${siteId}/${mapping.name}`} data-mapping={`${siteId}/${mapping.name}`}>
                                <td>{siteId}</td>
                                <th scope="row">{mapping.name}</th>
                                <td>{text(mapping.properties.recoveryVnetId)}</td>
                                <td>{text(mapping.properties.testVnetId)}</td>
                            </tr>
                        ))}
                    </tbody>
                </table>
            )}
        </section>
    );
}
