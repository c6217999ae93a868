import { OffHoursWindow, isWithinWindow } from '../policy/offHours';

/** A VM marked resync-required, as the scheduler sees it. */
export interface ResyncCandidate {
    vmId: string;
    siteId: string;
    /** The site's off-hours window. */
    window: OffHoursWindow;
    /** An operator asked for it now: the window does not apply (the site limit still does). */
    immediate: boolean;
    /** When the resync became required (ISO 8601): older ones go first. */
    requiredAt: string;
}

/**
 * Which resyncs to start now: candidates not already running, inside their site's window (or immediate), at most
 * `perSiteLimit` running per site counting those already running; immediate ones first, then the longest waiting.
 * Pure: the timer function feeds it the state it read and starts the chosen instances with deterministic ids,
 * so a second run that overlaps the first cannot start a second resync of the same VM.
 */
export function selectResyncsToStart(
    candidates: readonly ResyncCandidate[],
    runningVmIds: ReadonlySet<string>,
    runningPerSite: Readonly<Record<string, number>>,
    perSiteLimit: number,
    now: Date,
): ResyncCandidate[] {
    const ordered = [...candidates]
        .filter((c) => !runningVmIds.has(c.vmId))
        .filter((c) => c.immediate || isWithinWindow(now, c.window))
        .sort(
            (a, b) =>
                Number(b.immediate) - Number(a.immediate) ||
                a.requiredAt.localeCompare(b.requiredAt) ||
                a.vmId.localeCompare(b.vmId),
        );
    const used = new Map<string, number>(Object.entries(runningPerSite));
    const chosen: ResyncCandidate[] = [];
    const seen = new Set<string>();
    for (const c of ordered) {
        if (seen.has(c.vmId)) continue;
        const n = used.get(c.siteId) ?? 0;
        if (n >= perSiteLimit) continue;
        used.set(c.siteId, n + 1);
        seen.add(c.vmId);
        chosen.push(c);
    }
    return chosen;
}
