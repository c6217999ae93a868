import { BlobClient, PageBlobClient } from '@azure/storage-blob';
import { integerSetting } from '../config';
import { ErrorCode, HvrError } from '../errors';
import { Clock } from '../ports';
import { StateScope } from '../state/protectedItems';
import { callTimeoutMs } from '../storage/deadline';
import { chainGapMinSecondsFromEnv } from './chainGap';
import { LogBlobName, LogMetadata } from './logBlob';
import { MergeNotifier } from './notifier';
import type { SnapshotImmutability } from './pointProtection';
import type { RetentionPolicy } from './retentionSchedule';

/** Tuning read once from the app settings. */
export interface MergeSettings {
    /** Page writes in flight per merge (MERGE_CONCURRENCY, default 8). */
    concurrency: number;
    /**
     * The lower bound of a chain gap's wait (MERGE_GAP_MIN_SECONDS, default 120); the wait itself follows the VM's
     * copy frequency and a missing log must be known lost (shared/replica/chainGap.ts).
     */
    gapMinSeconds: number;
    /** Bound on every storage call (STORAGE_CALL_TIMEOUT_MS). */
    callTimeoutMs: number;
    /** Smallest ranged read of log data (MERGE_READ_BYTES, default 8 MiB). */
    readBytes: number;
    /**
     * How long one invocation applies a log before it records how far it got and hands the rest to a fresh
     * invocation (MERGE_TIME_BUDGET_SECONDS, default 300; must stay below the function timeout).
     */
    timeBudgetSeconds: number;
}

/** The function timeout of host.json (30 min): a budget must end well before it, leaving time to record progress. */
export const MAX_MERGE_TIME_BUDGET_SECONDS = 25 * 60;

export function mergeSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): MergeSettings {
    const timeBudgetSeconds = integerSetting('MERGE_TIME_BUDGET_SECONDS', 300, env);
    if (timeBudgetSeconds < 1 || timeBudgetSeconds > MAX_MERGE_TIME_BUDGET_SECONDS) {
        throw new HvrError(
            'CONFIG_MISSING',
            `The app setting MERGE_TIME_BUDGET_SECONDS is ${timeBudgetSeconds}; it must be 1..` +
                `${MAX_MERGE_TIME_BUDGET_SECONDS} (below the 30-minute function timeout).`,
            { setting: 'MERGE_TIME_BUDGET_SECONDS' },
        );
    }
    return {
        concurrency: Math.max(1, integerSetting('MERGE_CONCURRENCY', 8, env)),
        gapMinSeconds: chainGapMinSecondsFromEnv(env),
        callTimeoutMs: callTimeoutMs(),
        readBytes: Math.max(1024 * 1024, integerSetting('MERGE_READ_BYTES', 8 * 1024 * 1024, env)),
        timeBudgetSeconds,
    };
}

/** When an invocation should stop starting new work on a log. */
export interface MergeBudget {
    exhausted(): boolean;
}

/** The production budget: wall time since the budget was created (monotonic clock). */
export function timeBudget(seconds: number): MergeBudget {
    const until = performance.now() + seconds * 1000;
    return { exhausted: () => performance.now() >= until };
}

/** What the merge works with; the function wires production ports, tests pass their own. */
export interface MergeDeps {
    scope: StateScope;
    notifier: MergeNotifier;
    clock: Clock;
    settings: MergeSettings;
    /** The VM's recovery point retention; absent means the policy default (24 h, no app-consistent frequency). */
    retentionFor?: (vmId: string) => Promise<RetentionPolicy | undefined>;
    /** The VM's policy copy frequency in seconds (the chain-gap wait follows it); absent: the policy default. */
    copyFrequencyFor?: (vmId: string) => Promise<number | undefined>;
    /** The immutability policy set on held points' snapshots (RECOVERY_POINT_IMMUTABILITY; default None). */
    immutability?: SnapshotImmutability;
    log?: (message: string, data?: Record<string, unknown>) => void;
    signal?: AbortSignal;
    /** This invocation's budget; default: settings.timeBudgetSeconds from the first call that needs it. */
    budget?: MergeBudget;
    /** Fault injection for tests: called after each page call of a log (throw to stop the merge there). */
    afterWrite?: (log: LogBlobName, writesDone: number) => void | Promise<void>;
}

/** Per-log numbers, logged with every merge and returned in its outcome. */
export interface MergeMetrics {
    entries: number;
    /** Bytes of data the log carries. */
    bytes: number;
    /** Disk ranges left after last-writer-wins. */
    extents: number;
    putPageCalls: number;
    clearPagesCalls: number;
    /** Put Page calls the resolved ranges need at the least (clears not counted). */
    minPutPageCalls: number;
    bytesPut: number;
    bytesCleared: number;
    /**
     * Reads of the log (each a ranged GET of up to 8 MiB, or several in parallel) and the bytes they fetched: a log
     * of at most two read sizes is read once, whole; a larger one is read for its index, for its checksums (when it
     * has them) and for its writes.
     */
    logReads: number;
    logBytesRead: number;
    /** Time to read and check the index, to verify the data (0 without data checksums), to write, in all. */
    indexMs: number;
    verifyMs: number;
    writeMs: number;
    ms: number;
    /** Invocation-local: the plan's steps, and the step this invocation started at (> 0 for a continuation). */
    steps: number;
    fromStep: number;
}

/** What happened to one log. Expected situations are outcomes; only transient failures throw. */
export type MergeOutcome =
    | {
          status: 'applied';
          name: string;
          sequence: number;
          metrics: MergeMetrics;
          recoveryPointId?: string;
      }
    /** The budget ran out: progress is recorded in the disk row, a fresh invocation must continue the log. */
    | { status: 'continuing'; name: string; sequence: number; stepsDone: number; steps: number }
    /** A previous try wrote the log and set the sequence number but crashed before the table row: finished now. */
    | { status: 'finished'; name: string; sequence: number; recoveryPointId?: string }
    /** Already applied (a repeated upload or trigger): acknowledged and removed. */
    | { status: 'duplicate'; name: string; sequence: number }
    /** Its predecessor is not applied yet: left in place. */
    | { status: 'waiting'; name: string; sequence: number; appliedSequence: number }
    | {
          status: 'quarantined';
          name: string;
          reason: string;
          code: ErrorCode;
          detail: string;
          /** Whether this log made the disk resync required (false when it already was, or for a stray log). */
          diskMarked: boolean;
      }
    /** Another merge of the same log moved the replica on first (412 on the sequence number): stopped cleanly. */
    | { status: 'stale'; name: string; sequence: number; detail: string }
    /** The log blob no longer exists: an earlier merge applied it (or refused it) and removed it. */
    | { status: 'gone'; name: string };

/** One log being acted on. `resync` comes from the pipeline's resync state, never from the blob's metadata. */
export interface LogContext {
    deps: MergeDeps;
    name: string;
    log: LogBlobName;
    blob: BlobClient;
    meta: LogMetadata;
    replica: PageBlobClient;
    resync: boolean;
    /** The log blob's ETag as read before the decision. */
    logETag?: string;
    /** The log blob's size with that ETag: the merge reads exactly the version it decided on. */
    logSize?: number;
    /** The position a running resync of the disk expects its log at (its backlog logs stay), if any. */
    resyncExpects?: number;
}

export function budgetOf(deps: MergeDeps): MergeBudget {
    deps.budget ??= timeBudget(deps.settings.timeBudgetSeconds);
    return deps.budget;
}
