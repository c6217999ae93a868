/** The soak benchmark's numbers: percentiles and RPO samples. */

export interface Spread {
    p50: number;
    p99: number;
    max: number;
}

/**
 * The p-th percentile (0–100) of `values` by nearest rank: the smallest value with at least p % of the values at
 * or below it. Undefined for no values.
 */
export function percentile(values: readonly number[], p: number): number | undefined {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be 0..100, got ${p}`);
    if (values.length === 0) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
    return sorted[rank - 1]!;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

/** p50, p99 and max of `values` (rounded to 0.1), or undefined for none. */
export function spread(values: readonly number[]): Spread | undefined {
    if (values.length === 0) return undefined;
    return {
        p50: round1(percentile(values, 50)!),
        p99: round1(percentile(values, 99)!),
        max: round1(Math.max(...values)),
    };
}

/**
 * One RPO sample: seconds from the capture of the VM's newest recovery point to `now`; undefined while the VM
 * has no point yet.
 */
export function rpoSeconds(now: Date, newestCapturedAt: Date | undefined): number | undefined {
    if (!newestCapturedAt) return undefined;
    return Math.max(0, (now.getTime() - newestCapturedAt.getTime()) / 1000);
}

/** RPO samples per VM, taken once a second. */
export class RpoSampler {
    private readonly newest = new Map<string, Date>();
    private readonly samples = new Map<string, number[]>();

    constructor(vmIds: readonly string[]) {
        for (const vmId of vmIds) this.samples.set(vmId, []);
    }

    /** A point of `vmId` captured at `capturedAt` exists (older ones than the newest known change nothing). */
    pointRecorded(vmId: string, capturedAt: Date): void {
        const known = this.newest.get(vmId);
        if (!known || capturedAt > known) this.newest.set(vmId, capturedAt);
    }

    /** Takes one sample of every VM that has a point. */
    sample(now: Date): void {
        for (const [vmId, list] of this.samples) {
            const rpo = rpoSeconds(now, this.newest.get(vmId));
            if (rpo !== undefined) list.push(rpo);
        }
    }

    /** Over every VM and sample, and per VM. */
    report(): { all: Spread | undefined; perVm: Record<string, Spread | undefined>; samples: number } {
        const all = [...this.samples.values()].flat();
        return {
            all: spread(all),
            perVm: Object.fromEntries([...this.samples].map(([vmId, list]) => [vmId, spread(list)])),
            samples: all.length,
        };
    }
}
