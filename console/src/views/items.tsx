import { useMemo, useState } from 'preact/hooks';
import { api, Item, List } from '../api';
import { ErrorLine, Health, Loading } from '../components';
import { ago, duration, initialReplicationPercent } from '../format';
import { usePoll } from '../hooks';

type SortKey = 'name' | 'site' | 'health' | 'state' | 'rpo' | 'lastPoint' | 'testFailover';

const HEALTH_ORDER: Record<string, number> = { Critical: 0, Warning: 1, Normal: 2 };

function sortValue(item: Item, key: SortKey): string | number {
    const p = item.properties;
    switch (key) {
        case 'name':
            return (p.vmName || item.name).toLowerCase();
        case 'site':
            return p.siteId;
        case 'health':
            return HEALTH_ORDER[p.replicationHealth] ?? 3;
        case 'state':
            return p.protectionStateDescription;
        case 'rpo':
            return p.rpoSeconds ?? Number.POSITIVE_INFINITY;
        case 'lastPoint':
            return p.lastRecoveryPointAt ?? '';
        case 'testFailover':
            return p.testFailoverStateDescription ?? 'None';
    }
}

/** Status: the protection state, and while initial replication runs its progress. */
export function statusText(item: Item): string {
    const p = item.properties;
    const pct = initialReplicationPercent(p.initialReplicationProgress);
    if (p.protectionState === 'InitialReplicationInProgress' && pct !== undefined) {
        return `${p.protectionStateDescription} (${pct} %)`;
    }
    return p.protectionStateDescription;
}

const COLUMNS: { key: SortKey; label: string }[] = [
    { key: 'name', label: 'Name' },
    { key: 'site', label: 'Site' },
    { key: 'health', label: 'Replication health' },
    { key: 'state', label: 'Status' },
    { key: 'rpo', label: 'RPO' },
    { key: 'lastPoint', label: 'Last recovery point' },
    { key: 'testFailover', label: 'Test failover' },
];

/** What the items view lists (main.tsx asks for it before the first render). */
export const ITEMS_PATH = '/replicationProtectedItems';

/** Replicated items: every protected VM with its health, status and RPO; filter, sort, live refresh. */
export function ItemsView() {
    const items = usePoll(() => api<List<Item>>('GET', ITEMS_PATH), []);
    const [text, setText] = useState('');
    const [health, setHealth] = useState('');
    const [sort, setSort] = useState<{ key: SortKey; dir: 1 | -1 }>({ key: 'name', dir: 1 });
    const rows = useMemo(() => {
        const needle = text.trim().toLowerCase();
        const shown = (items.data?.value ?? []).filter((i) => {
            const p = i.properties;
            if (health !== '' && p.replicationHealth !== health) return false;
            if (needle === '') return true;
            return [i.name, p.vmName, p.siteId, p.protectionStateDescription].some((v) =>
                v?.toLowerCase().includes(needle),
            );
        });
        return shown.sort((a, b) => {
            const va = sortValue(a, sort.key);
            const vb = sortValue(b, sort.key);
            return (va < vb ? -1 : va > vb ? 1 : a.name.localeCompare(b.name)) * sort.dir;
        });
    }, [items.data, text, health, sort]);
    const counts = { Normal: 0, Warning: 0, Critical: 0 } as Record<string, number>;
    for (const i of items.data?.value ?? [])
        counts[i.properties.replicationHealth] = (counts[i.properties.replicationHealth] ?? 0) + 1;
    const now = items.loadedAt ?? Date.now();
    return (
        <section aria-labelledby="items-title">
            <header class="view-header">
                <h1 id="items-title">Replicated items</h1>
                <p class="summary" aria-live="polite">
                    {items.data
                        ? `${items.data.value.length} items · ${counts.Normal} healthy · ${counts.Warning} warning · ${counts.Critical} critical`
                        : ' '}
                </p>
            </header>
            <div class="filters" role="search">
                <label>
                    Filter
                    <input
                        type="search"
                        value={text}
                        placeholder="name, site or status"
                        onInput={(e) => setText((e.target as HTMLInputElement).value)}
                    />
                </label>
                <label>
                    Health
                    <select value={health} onChange={(e) => setHealth((e.target as HTMLSelectElement).value)}>
                        <option value="">All</option>
                        <option>Normal</option>
                        <option>Warning</option>
                        <option>Critical</option>
                    </select>
                </label>
            </div>
            <ErrorLine error={items.error} />
            {!items.data ? (
                <Loading what="replicated items" />
            ) : (
                <table class="grid items" id="items-table" data-count={rows.length}>
                    <caption class="sr-only">Replicated items, sorted by {sort.key}</caption>
                    <thead>
                        <tr>
                            {COLUMNS.map((c) => (
                                <th
                                    key={c.key}
                                    scope="col"
                                    aria-sort={
                                        sort.key === c.key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'
                                    }
                                >
                                    <button
                                        type="button"
                                        class="sort"
                                        onClick={() =>
                                            setSort((s) => ({
                                                key: c.key,
                                                dir: s.key === c.key ? (s.dir === 1 ? -1 : 1) : 1,
                                            }))
                                        }
                                    >
                                        {c.label}
                                    </button>
                                </th>
                            ))}
                        </tr>
                    </thead>
                    <tbody>
                        {rows.map((i) => {
                            const p = i.properties;
                            return (
                                <tr key={i.name} data-vm={i.name}>
                                    <th scope="row">
                                        <a href={`#/vm/${encodeURIComponent(i.name)}`}>{p.vmName || i.name}</a>
                                        <span class="sub">{i.name}</span>
                                    </th>
                                    <td>{p.siteId}</td>
                                    <td>
                                        <Health value={p.replicationHealth} />
                                        {/* Always there, empty or not: a reason coming or going moves nothing. */}
                                        <span class="sub reasons">
                                            {p.healthReasons.map((r) => r.message).join(' ')}
                                        </span>
                                    </td>
                                    <td data-col="status">{statusText(i)}</td>
                                    <td class="num" data-col="rpo">
                                        {duration(p.rpoSeconds)}
                                    </td>
                                    <td>{p.lastRecoveryPointAt ? ago(p.lastRecoveryPointAt, now) : '—'}</td>
                                    <td data-col="testFailover">{p.testFailoverStateDescription ?? 'None'}</td>
                                </tr>
                            );
                        })}
                    </tbody>
                </table>
            )}
            {items.data && rows.length === 0 && <p class="empty">No item matches.</p>}
        </section>
    );
}
