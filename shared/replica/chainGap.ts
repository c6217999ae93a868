import { integerSetting } from '../config';

/**
 * The one owner of the chain-gap rule: when a disk's next log is missing and later ones wait, how long the merge
 * waits, and when the missing log counts as lost (the chain is broken and the disk needs a resync).
 *
 * The wait follows the VM's copy frequency: CHAIN_GAP_CYCLES cycles, never less than MERGE_GAP_MIN_SECONDS. It is
 * over early once the provider has reported CHAIN_GAP_CYCLES cycles from the missing log on (it moved on; at 30 s
 * cycles that is what "a few cycles" looks like in wall time too). Past the wait, the log is **lost** only when it
 * is known to be: no upload of it is in progress (no uncommitted blocks under its position) and either the
 * provider's own cycle report listed it (the provider says it was uploaded, and it is not there) or every upload
 * grant of the disk has expired (nobody can still upload it). Otherwise the merge keeps waiting: a slow upload of
 * a big log never forces a resync.
 */
export const CHAIN_GAP_CYCLES = 3;

/** The lower bound of the wait, in seconds (app setting; tests and the simulator's host lower it). */
export const CHAIN_GAP_MIN_SECONDS_SETTING = 'MERGE_GAP_MIN_SECONDS';
export const DEFAULT_CHAIN_GAP_MIN_SECONDS = 120;

/** The copy frequency assumed for a VM whose policy cannot be read (the policy default). */
export const DEFAULT_COPY_FREQUENCY_SECONDS = 300;

export function chainGapMinSecondsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
    return integerSetting(CHAIN_GAP_MIN_SECONDS_SETTING, DEFAULT_CHAIN_GAP_MIN_SECONDS, env);
}

/** How long a gap waits in wall time before the missing log may be judged: a few cycles, bounded below. */
export function chainGapTimeoutSeconds(copyFrequencySeconds: number | undefined, minSeconds: number): number {
    const frequency =
        copyFrequencySeconds !== undefined && Number.isFinite(copyFrequencySeconds) && copyFrequencySeconds > 0
            ? copyFrequencySeconds
            : DEFAULT_COPY_FREQUENCY_SECONDS;
    return Math.max(minSeconds, CHAIN_GAP_CYCLES * frequency);
}

/** What the upload ledger (shared/state/uploadLedger.ts) knows about a disk's uploads. */
export interface UploadFacts {
    /** When the newest upload grant of the disk expires (ISO 8601); absent when none is recorded. */
    grantExpiresOn?: string;
    /** The highest log position a provider's cycle report (CycleCompleted) listed for the disk. */
    reportedSequence?: number;
    reportedCycleId?: string;
}

/** Everything the judgement looks at, gathered by the merge. */
export interface ChainGapFacts {
    diskId: string;
    /** The missing log's position (the disk's applied sequence + 1). */
    missingSequence: number;
    /** Since when a later log waits for it. */
    waitingSince: string;
    now: Date;
    copyFrequencySeconds: number | undefined;
    minSeconds: number;
    uploads: UploadFacts;
    /** Blobs under the missing position with uncommitted blocks: an upload of it is under way. */
    uploadInProgress: boolean;
}

export type ChainGapVerdict =
    /** Keep waiting; `why` says for what (logged, one line). */
    | { lost: false; why: string }
    /** The log is known lost: the chain is broken. `detail` says how it is known. */
    | { lost: true; detail: string };

/** The rule, as a pure function: wait, or the log is known lost. */
export function judgeChainGap(facts: ChainGapFacts): ChainGapVerdict {
    const { diskId, missingSequence: n, uploads } = facts;
    const waited = (facts.now.getTime() - Date.parse(facts.waitingSince)) / 1000;
    if (!Number.isFinite(waited)) return { lost: false, why: `the gap's start "${facts.waitingSince}" is unreadable` };
    const timeout = chainGapTimeoutSeconds(facts.copyFrequencySeconds, facts.minSeconds);
    const cyclesReported = uploads.reportedSequence !== undefined ? uploads.reportedSequence - n + 1 : 0;
    const longEnough = waited >= timeout || (waited >= facts.minSeconds && cyclesReported >= CHAIN_GAP_CYCLES);
    const waitedText = `${Math.round(waited)} s`;
    if (!longEnough) {
        return {
            lost: false,
            why:
                `log ${n} of disk ${diskId} has been missing for ${waitedText} (it is judged after ${timeout} s, ` +
                `or after ${facts.minSeconds} s once ${CHAIN_GAP_CYCLES} cycles from it are reported; ${Math.max(0, cyclesReported)} are)`,
        };
    }
    if (facts.uploadInProgress) {
        return { lost: false, why: `an upload of log ${n} of disk ${diskId} is in progress (uncommitted blocks)` };
    }
    if (uploads.reportedSequence !== undefined && uploads.reportedSequence >= n) {
        return {
            lost: true,
            detail:
                `log ${n} of disk ${diskId} is lost: the provider reported cycles up to log ${uploads.reportedSequence}` +
                `${uploads.reportedCycleId ? ` (${uploads.reportedCycleId})` : ''} as uploaded, it is not in the ` +
                `container and no upload of it is in progress (missing for ${waitedText})`,
        };
    }
    const expires = uploads.grantExpiresOn !== undefined ? Date.parse(uploads.grantExpiresOn) : NaN;
    if (Number.isFinite(expires) && expires <= facts.now.getTime()) {
        return {
            lost: true,
            detail:
                `log ${n} of disk ${diskId} is lost: every upload grant of the disk expired (the newest at ` +
                `${uploads.grantExpiresOn}) without it, and no upload of it is in progress (missing for ${waitedText})`,
        };
    }
    return {
        lost: false,
        why: Number.isFinite(expires)
            ? `log ${n} of disk ${diskId} is not reported yet and a grant of the disk is valid until ${uploads.grantExpiresOn}: a slow upload may still deliver it`
            : `log ${n} of disk ${diskId} is neither reported by the provider nor covered by a recorded grant: nothing says it is lost`,
    };
}
