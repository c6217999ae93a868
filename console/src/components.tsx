import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';
import { duration, time } from './format';

export function Health({ value }: { value: string }) {
    return <span class={`badge health-${value.toLowerCase()}`}>{value}</span>;
}

export function StateBadge({ value }: { value: string }) {
    return <span class={`badge state-${value.toLowerCase()}`}>{value}</span>;
}

/** An error line that takes its space whether or not there is an error (no layout shift when one comes or goes). */
export function ErrorLine({ error }: { error: ApiError | undefined }) {
    return (
        <p class="error-line" role="status" aria-live="polite">
            {error ? `${error.code}: ${error.message}` : ''}
        </p>
    );
}

export function Loading({ what }: { what: string }) {
    return (
        <p class="loading" aria-busy="true">
            Loading {what}…
        </p>
    );
}

/**
 * A confirmation for an action that starts a job: a modal <dialog> (focus stays inside, Esc cancels), with the
 * consequences spelled out and, for the ones that cannot be undone, the VM's name to type.
 */
export function ConfirmDialog(props: {
    title: string;
    confirmLabel: string;
    children: ComponentChildren;
    typeToConfirm?: string;
    onConfirm: () => Promise<void>;
    onClose: () => void;
}) {
    const ref = useRef<HTMLDialogElement>(null);
    const [typed, setTyped] = useState('');
    const [busy, setBusy] = useState(false);
    const [error, setError] = useState<ApiError | undefined>(undefined);
    useEffect(() => {
        const dialog = ref.current;
        if (dialog && !dialog.open) dialog.showModal();
    }, []);
    const blocked = busy || (props.typeToConfirm !== undefined && typed !== props.typeToConfirm);
    const confirm = async (e: Event) => {
        e.preventDefault();
        if (blocked) return;
        setBusy(true);
        setError(undefined);
        try {
            await props.onConfirm();
            ref.current?.close();
            props.onClose();
        } catch (err) {
            setError(err instanceof ApiError ? err : new ApiError(0, 'CONSOLE', String(err)));
            setBusy(false);
        }
    };
    return (
        <dialog ref={ref} class="confirm" aria-labelledby="confirm-title" onClose={props.onClose}>
            <form method="dialog" onSubmit={(e) => void confirm(e)}>
                <h2 id="confirm-title">{props.title}</h2>
                <div class="confirm-body">{props.children}</div>
                {props.typeToConfirm !== undefined && (
                    <label>
                        Type <strong>{props.typeToConfirm}</strong> to confirm
                        <input
                            value={typed}
                            onInput={(e) => setTyped((e.target as HTMLInputElement).value)}
                            autocomplete="off"
                        />
                    </label>
                )}
                <ErrorLine error={error} />
                <div class="buttons">
                    <button type="button" onClick={() => ref.current?.close()}>
                        Cancel
                    </button>
                    <button type="submit" class="primary" disabled={blocked}>
                        {busy ? 'Starting…' : props.confirmLabel}
                    </button>
                </div>
            </form>
        </dialog>
    );
}

const CHART = { width: 720, height: 200, left: 56, right: 12, top: 12, bottom: 28 };

/**
 * RPO over a time window as an SVG line with one marker per sample. Each marker carries its sample
 * (`data-at`, `data-rpo`) so what is drawn can be compared with what the API served.
 */
export function RpoChart(props: {
    since: string;
    until: string;
    samples: { at: string; rpoSeconds: number }[];
    warningSeconds?: number;
}) {
    const t0 = Date.parse(props.since);
    const t1 = Date.parse(props.until);
    const max = Math.max(60, props.warningSeconds ?? 0, ...props.samples.map((s) => s.rpoSeconds)) * 1.1;
    const w = CHART.width - CHART.left - CHART.right;
    const h = CHART.height - CHART.top - CHART.bottom;
    const x = (at: string) => CHART.left + ((Date.parse(at) - t0) / Math.max(1, t1 - t0)) * w;
    const y = (rpo: number) => CHART.top + h - (rpo / max) * h;
    const path = props.samples.map(
        (s, i) => `${i === 0 ? 'M' : 'L'}${x(s.at).toFixed(1)},${y(s.rpoSeconds).toFixed(1)}`,
    );
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
    const hours = [0, 6, 12, 18, 24].map((k) => t0 + ((t1 - t0) * k) / 24);
    const last = props.samples[props.samples.length - 1];
    return (
        <figure class="chart">
            <svg
                viewBox={`0 0 ${CHART.width} ${CHART.height}`}
                role="img"
                aria-label={`RPO over the last 24 hours: ${props.samples.length} samples${last ? `, latest ${duration(last.rpoSeconds)}` : ''}`}
                data-testid="rpo-chart"
            >
                {ticks.map((v) => (
                    <g key={`y${v}`}>
                        <line class="grid" x1={CHART.left} x2={CHART.width - CHART.right} y1={y(v)} y2={y(v)} />
                        <text class="axis" x={CHART.left - 6} y={y(v) + 4} text-anchor="end">
                            {duration(v)}
                        </text>
                    </g>
                ))}
                {hours.map((t) => (
                    <text
                        key={`x${t}`}
                        class="axis"
                        x={CHART.left + ((t - t0) / Math.max(1, t1 - t0)) * w}
                        y={CHART.height - 8}
                        text-anchor="middle"
                    >
                        {new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })}
                    </text>
                ))}
                {props.warningSeconds !== undefined && props.warningSeconds < max && (
                    <line
                        class="threshold"
                        x1={CHART.left}
                        x2={CHART.width - CHART.right}
                        y1={y(props.warningSeconds)}
                        y2={y(props.warningSeconds)}
                    />
                )}
                <path class="rpo-line" d={path.join(' ')} />
                {props.samples.map((s) => (
                    <circle
                        key={s.at}
                        class="rpo-point"
                        cx={x(s.at)}
                        cy={y(s.rpoSeconds)}
                        r="2.5"
                        data-at={s.at}
                        data-rpo={s.rpoSeconds}
                    >
                        <title>{`${time(s.at)}: ${duration(s.rpoSeconds)}`}</title>
                    </circle>
                ))}
            </svg>
            <figcaption>
                {props.samples.length === 0
                    ? 'No RPO sample yet: the monitor records one at each wake once the VM is protected.'
                    : `${props.samples.length} samples from the replication monitor.`}
            </figcaption>
        </figure>
    );
}

const TIMELINE = { width: 720, height: 64, left: 12, right: 12 };

/** Recovery points on a time axis: circles for crash-consistent, diamonds for app-consistent. */
export function RecoveryPointTimeline(props: { points: { name: string; at: string; type: string }[] }) {
    if (props.points.length === 0) return <p class="empty">No recovery point yet.</p>;
    const times = props.points.map((p) => Date.parse(p.at));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times, t0 + 60_000);
    const w = TIMELINE.width - TIMELINE.left - TIMELINE.right;
    const x = (at: string) => TIMELINE.left + ((Date.parse(at) - t0) / (t1 - t0)) * w;
    return (
        <figure class="timeline">
            <svg
                viewBox={`0 0 ${TIMELINE.width} ${TIMELINE.height}`}
                role="img"
                aria-label={`${props.points.length} recovery points from ${time(new Date(t0).toISOString())} to ${time(new Date(t1).toISOString())}`}
                data-testid="rp-timeline"
            >
                <line class="grid" x1={TIMELINE.left} x2={TIMELINE.width - TIMELINE.right} y1="32" y2="32" />
                {props.points.map((p) =>
                    p.type === 'AppConsistent' ? (
                        <rect
                            key={p.name}
                            class="rp app"
                            x={x(p.at) - 5}
                            y="27"
                            width="10"
                            height="10"
                            transform={`rotate(45 ${x(p.at)} 32)`}
                            data-id={p.name}
                            data-type={p.type}
                        >
                            <title>{`${p.name} · app-consistent · ${time(p.at)}`}</title>
                        </rect>
                    ) : (
                        <circle
                            key={p.name}
                            class="rp crash"
                            cx={x(p.at)}
                            cy="32"
                            r="5"
                            data-id={p.name}
                            data-type={p.type}
                        >
                            <title>{`${p.name} · crash-consistent · ${time(p.at)}`}</title>
                        </circle>
                    ),
                )}
                <text class="axis" x={TIMELINE.left} y="60">
                    {time(new Date(t0).toISOString())}
                </text>
                <text class="axis" x={TIMELINE.width - TIMELINE.right} y="60" text-anchor="end">
                    {time(new Date(t1).toISOString())}
                </text>
            </svg>
            <figcaption>
                <span class="legend crash" /> crash-consistent <span class="legend app" /> app-consistent
            </figcaption>
        </figure>
    );
}
