/**
 * A cheap ransomware signal measured while the merge writes: how much of a disk a cycle changed, and how much of
 * the written data looks like ciphertext, against the disk's usual. Pure: the merge feeds it the data it already
 * holds in memory; the score is a function of numbers stored with each recovery point (docs/merge.md
 * "Suspicious churn").
 */

/** Bytes of written data between two samples, and the size of one sample. */
export const SAMPLE_STRIDE_BYTES = 256 * 1024;
export const SAMPLE_BYTES = 4096;
/**
 * A 4 KiB sample "looks random" when its byte entropy is at least 7.9 bits and its chi-square against the
 * uniform distribution at most 330 (255 degrees of freedom: 99.9 % of random samples pass). Ciphertext passes;
 * text, code, databases and most images fail; deflate output passes about 4 times in 5, LZMA (xz) nearly always.
 */
export const RANDOM_ENTROPY_BITS = 7.9;
export const RANDOM_CHI_SQUARE = 330;

/** What the merge measured on the logs of one disk since the disk's last recovery point. */
export interface ChurnMeasure {
    /** Bytes written (Put Page and Clear Pages), overwrites counted each time. */
    writtenBytes: number;
    samples: number;
    /** Samples that looked random. */
    randomSamples: number;
    /** Sum of the samples' entropies (bits per byte), for the mean. */
    entropySum: number;
}

export const EMPTY_MEASURE: ChurnMeasure = { writtenBytes: 0, samples: 0, randomSamples: 0, entropySum: 0 };

export function addMeasures(a: ChurnMeasure, b: ChurnMeasure): ChurnMeasure {
    return {
        writtenBytes: a.writtenBytes + b.writtenBytes,
        samples: a.samples + b.samples,
        randomSamples: a.randomSamples + b.randomSamples,
        entropySum: a.entropySum + b.entropySum,
    };
}

const LOG2 = new Float64Array(SAMPLE_BYTES + 1).map((_, i) => (i === 0 ? 0 : Math.log2(i)));

/** Byte entropy (bits per byte) and chi-square against uniform of `data` (at most SAMPLE_BYTES long). */
export function byteStatistics(data: Uint8Array): { entropy: number; chiSquare: number } {
    const counts = new Uint32Array(256);
    for (let i = 0; i < data.length; i++) counts[data[i]!]!++;
    const n = data.length;
    const expected = n / 256;
    let entropy = 0;
    let chiSquare = 0;
    const log2n = Math.log2(n);
    for (let i = 0; i < 256; i++) {
        const c = counts[i]!;
        if (c > 0) entropy -= (c / n) * ((c <= SAMPLE_BYTES ? LOG2[c]! : Math.log2(c)) - log2n);
        const d = c - expected;
        chiSquare += (d * d) / expected;
    }
    return { entropy, chiSquare };
}

export function looksRandom(stats: { entropy: number; chiSquare: number }): boolean {
    return stats.entropy >= RANDOM_ENTROPY_BITS && stats.chiSquare <= RANDOM_CHI_SQUARE;
}

/**
 * Samples the data of a log's Put Pages as the merge writes them: one 4 KiB window every SAMPLE_STRIDE_BYTES of
 * written data (about 1.6 % of the bytes are looked at once more). Writes shorter than a sample only count bytes.
 */
export class ChurnSampler {
    private untilNext = 0;
    private measure: ChurnMeasure = { ...EMPTY_MEASURE };

    /** A Put Page's data. */
    observe(data: Uint8Array): void {
        this.measure.writtenBytes += data.length;
        if (data.length < SAMPLE_BYTES) {
            this.untilNext = Math.max(0, this.untilNext - data.length);
            return;
        }
        let at = this.untilNext;
        while (at < data.length) {
            const start = Math.min(at, data.length - SAMPLE_BYTES);
            const stats = byteStatistics(data.subarray(start, start + SAMPLE_BYTES));
            this.measure.samples++;
            this.measure.entropySum += stats.entropy;
            if (looksRandom(stats)) this.measure.randomSamples++;
            at += SAMPLE_STRIDE_BYTES;
        }
        this.untilNext = at - data.length;
    }

    /** Bytes cleared (known zeros: never random). */
    cleared(bytes: number): void {
        this.measure.writtenBytes += bytes;
    }

    result(): ChurnMeasure {
        return { ...this.measure };
    }
}

/** A disk's usual, learned from its clean recovery points (exponentially weighted). */
export interface ChurnBaseline {
    /** Points learned from. */
    points: number;
    /** Usual share of written data that looks random (the initial copy's share to begin with). */
    randomShare: number;
    /** Usual log2 of bytes changed per point; absent until a point after the initial copy. */
    log2Bytes?: number;
}

/** How fast the baseline follows the disk: each clean point weighs this much. */
export const BASELINE_WEIGHT = 0.2;
/** At least this many changed bytes count as "usual" (a quiet disk must not make any burst look like an attack). */
export const BASELINE_FLOOR_BYTES = 1024 * 1024;
/** Random-looking bytes that make a cycle's spread count fully, as a share of the disk. */
export const SPREAD_SHARE = 0.1;
/** A rise of the random share by this much makes novelty count fully. */
export const NOVELTY_RISE = 0.5;
/** Changed bytes 2^this times the usual make the surge count fully. */
export const SURGE_DOUBLINGS = 3;
/** A point whose score reaches this is flagged `SuspiciousChurn`. */
export const SUSPICIOUS_SCORE = 0.5;

export interface DiskChurn {
    /** Distinct bytes the cycle changed (from the merge's write ranges). */
    changedBytes: number;
    /** changedBytes / the disk's size. */
    share: number;
    samples: number;
    /** Share of samples that looked random (0 without samples). */
    randomShare: number;
    meanEntropy: number;
    spread: number;
    novelty: number;
    surge: number;
    score: number;
}

const clamp01 = (x: number): number => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0);

/**
 * The score of one disk's cycle, 0 to 1: spread × max(novelty, surge).
 * - spread: random-looking bytes written (changed × random share) against SPREAD_SHARE of the disk — an attack
 *   must rewrite a good part of the disk with ciphertext;
 * - novelty: how far the random share rose above the disk's usual — a disk of text and databases suddenly
 *   written with ciphertext;
 * - surge: how many times more than usual the cycle changed — the only signal left on a disk whose writes always
 *   look random (already-encrypted guests, or compressed media stores).
 * No baseline yet (the initial copy) scores 0: there is nothing to compare with.
 */
export function scoreDiskChurn(
    measure: ChurnMeasure,
    changedBytes: number,
    virtualSize: number,
    baseline: ChurnBaseline | undefined,
): DiskChurn {
    const randomShare = measure.samples > 0 ? measure.randomSamples / measure.samples : 0;
    const meanEntropy = measure.samples > 0 ? measure.entropySum / measure.samples : 0;
    const share = virtualSize > 0 ? changedBytes / virtualSize : 0;
    let spread = 0;
    let novelty = 0;
    let surge = 0;
    if (baseline && baseline.points > 0) {
        spread = clamp01((changedBytes * randomShare) / (SPREAD_SHARE * virtualSize));
        novelty = clamp01((randomShare - baseline.randomShare) / NOVELTY_RISE);
        if (baseline.log2Bytes !== undefined) {
            const usual = Math.max(2 ** baseline.log2Bytes, BASELINE_FLOOR_BYTES);
            surge = clamp01(Math.log2(Math.max(changedBytes, 1) / usual) / SURGE_DOUBLINGS);
        }
    }
    const round = (x: number): number => Math.round(x * 1000) / 1000;
    return {
        changedBytes,
        share: round(share),
        samples: measure.samples,
        randomShare: round(randomShare),
        meanEntropy: round(meanEntropy),
        spread: round(spread),
        novelty: round(novelty),
        surge: round(surge),
        score: round(spread * Math.max(novelty, surge)),
    };
}

/** The baseline after a clean point; a flagged point teaches nothing (an attack must not become the usual). */
export function learnBaseline(baseline: ChurnBaseline | undefined, churn: DiskChurn): ChurnBaseline {
    const hasSamples = churn.samples > 0;
    if (!baseline || baseline.points === 0) {
        // The first point is the initial copy: its content's random share is the disk's usual; its size is not.
        return { points: 1, randomShare: hasSamples ? churn.randomShare : 0 };
    }
    const w = BASELINE_WEIGHT;
    const bytes = Math.log2(Math.max(churn.changedBytes, 1));
    return {
        points: baseline.points + 1,
        randomShare: hasSamples ? (1 - w) * baseline.randomShare + w * churn.randomShare : baseline.randomShare,
        log2Bytes: baseline.log2Bytes === undefined ? bytes : (1 - w) * baseline.log2Bytes + w * bytes,
    };
}

/** The VM's point: its worst disk decides. */
export interface PointChurn {
    score: number;
    suspicious: boolean;
    disks: Record<string, DiskChurn>;
}

export function pointChurn(disks: Record<string, DiskChurn>): PointChurn {
    const score = Math.max(0, ...Object.values(disks).map((d) => d.score));
    return { score, suspicious: score >= SUSPICIOUS_SCORE, disks };
}
