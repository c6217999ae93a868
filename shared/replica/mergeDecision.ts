import { ResyncReason } from '../lifecycle/instances';
import { ReplicaDiskState } from '../state/disks';

/**
 * Everything the exactly-once decision looks at for one log, read by the executor just before deciding:
 * the log's place (from its name), the disk row, the replica blob's sequence number and whether the
 * pipeline itself runs a resync of this disk that expects a log at this position.
 */
export interface MergeFacts {
    log: { sequence: number; logId: string };
    row: {
        /** Logs applied according to the row. */
        sequence: number;
        lastLogId?: string;
        state: ReplicaDiskState;
        resyncReason?: ResyncReason;
        applyingSequence?: number;
        applyingLogId?: string;
        /** Steps of the plan already written by earlier invocations (see applyLog.ts), with the plan's key. */
        applyingStep?: number;
        applyingPlan?: string;
        /** The ETag of the log blob the intent was taken for. */
        applyingLogETag?: string;
    };
    /** The log blob's ETag now. */
    logETag?: string;
    /** The replica blob's sequence number (x-ms-blob-sequence-number). */
    blobSequence: number;
    /**
     * The position a running resync of this disk expects its resync log at (its protected sequence + 1), from
     * the resync's own progress row; undefined when no resync runs. Never from anything the provider sets.
     */
    resyncExpects?: number;
}

/** What to do with the log. The executor (mergeLog.ts) carries it out; only it does I/O. */
export type MergeAction =
    /** Already applied: acknowledge and remove; `atHead` = it is the last applied log (recovery point check). */
    | { kind: 'duplicate'; atHead: boolean }
    /** Another log holds this position (applied or being applied): quarantine this one, disk untouched. */
    | { kind: 'superseded'; holder: string }
    /** Its predecessor is not applied yet. */
    | { kind: 'wait' }
    /** An earlier try wrote every page and set the sequence number, then stopped before the row: finish the row. */
    | { kind: 'finish' }
    /**
     * The log blob was replaced (new ETag) after pages of its earlier content were written: the replica holds a mix
     * no log describes. Refuse it and require a resync (the intent is cleared so the resync can protect the disk).
     */
    | { kind: 'replaced' }
    /** Blob and row disagree in a way no merge leaves behind: an operator must look. */
    | { kind: 'inconsistent'; detail: string }
    /** The disk awaits a resync and this is not the resync log the pipeline expects: quarantine, disk not re-marked. */
    | { kind: 'refuse'; reason: ResyncReason; detail: string }
    /** Apply the log from the first step of its plan (`resync`: it starts a new chain). */
    | { kind: 'apply'; resync: boolean }
    /** Carry on with the log from step `fromStep` of plan `plan`, where an earlier invocation's budget ran out. */
    | { kind: 'continue'; resync: boolean; fromStep: number; plan: string };

/**
 * The exactly-once decision, pure: the same facts always give the same action. Order matters: position first
 * (duplicate, superseded, wait), then what the blob says about an earlier try (finish, continue), then
 * consistency, then whether the log may start at all (refuse, apply).
 */
export function decideMerge(facts: MergeFacts): MergeAction {
    const { log, row, blobSequence } = facts;
    const n = log.sequence;
    const applied = row.sequence;

    if (n <= applied) {
        if (n === applied && row.lastLogId !== log.logId) return { kind: 'superseded', holder: row.lastLogId ?? '' };
        return { kind: 'duplicate', atHead: n === applied };
    }
    if (n > applied + 1) return { kind: 'wait' };

    const intentHere = row.applyingSequence === n;
    const intentMine = intentHere && row.applyingLogId === log.logId;
    if (intentHere && !intentMine) return { kind: 'superseded', holder: row.applyingLogId ?? '' };
    if (blobSequence === n && intentMine) return { kind: 'finish' };
    if (intentMine && row.applyingLogETag !== undefined && row.applyingLogETag !== facts.logETag) {
        return { kind: 'replaced' };
    }
    if (blobSequence !== applied) {
        return {
            kind: 'inconsistent',
            detail:
                `the replica has sequence number ${blobSequence} but its row says ${applied} logs are applied ` +
                `(intent: ${row.applyingSequence ?? 'none'})`,
        };
    }
    const resync = facts.resyncExpects === n;
    if (row.state === 'ResyncRequired' && !resync) {
        const reason = row.resyncReason ?? 'ChainGap';
        return {
            kind: 'refuse',
            reason,
            detail:
                facts.resyncExpects === undefined
                    ? `Disk awaits a resynchronization (${reason}) and none is running; no log applies at ${n}.`
                    : `Disk awaits a resynchronization (${reason}); only the resync log applies, at ${facts.resyncExpects}.`,
        };
    }
    if (intentMine && row.applyingStep !== undefined && row.applyingStep > 0 && row.applyingPlan !== undefined) {
        return { kind: 'continue', resync, fromStep: row.applyingStep, plan: row.applyingPlan };
    }
    return { kind: 'apply', resync };
}
