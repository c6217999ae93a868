/** How the console writes times, durations and sizes: one place, so every view reads alike. */

export function duration(seconds: number | null | undefined): string {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h < 48 ? `${h} h ${m} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function between(start?: string, end?: string, now = Date.now()): string {
    if (!start) return '—';
    const to = end ? Date.parse(end) : now;
    return duration((to - Date.parse(start)) / 1000);
}

export function time(iso?: string | null): string {
    if (!iso) return '—';
    const d = new Date(iso);
    return d.toLocaleString(undefined, {
        year: 'numeric',
        month: 'short',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
    });
}

export function ago(iso?: string | null, now = Date.now()): string {
    if (!iso) return '—';
    return `${duration((now - Date.parse(iso)) / 1000)} ago`;
}

export function bytes(n?: number | null): string {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Initial replication progress: the mean over the disks, whole percent. */
export function initialReplicationPercent(progress?: Record<string, number>): number | undefined {
    if (!progress) return undefined;
    const values = Object.values(progress);
    if (values.length === 0) return undefined;
    return Math.floor(values.reduce((a, b) => a + b, 0) / values.length);
}
