/**
 * ASR's test failover states for a replication protected item (`testFailoverState`) and what the portal shows
 * for each (`testFailoverStateDescription`). A drill counts only once its cleanup has run, as in ASR.
 */
export const TEST_FAILOVER_STATES = {
    None: 'None',
    TestFailoverInProgress: 'Test failover in progress',
    /** The test VM runs; the operator checks it, then starts the cleanup. */
    TestFailoverCleanupPending: 'Test failover cleanup pending',
    TestFailoverCleanupInProgress: 'Cleaning up test failover',
    /** The drill failed and its automatic cleanup failed too: the operator must run the cleanup. */
    TestFailoverFailed: 'Test failover failed',
    TestFailoverCleanupFailed: 'Test failover cleanup failed',
} as const;

export type TestFailoverState = keyof typeof TEST_FAILOVER_STATES;

/** The kind of failover, as ASR's job names them. */
export type FailoverKind = 'TestFailover' | 'PlannedFailover' | 'UnplannedFailover';

/** A drill's own lifecycle, kept in the Drills table. */
export type DrillState =
    /** Resources are being created. */
    | 'InProgress'
    /** Every resource exists; waiting for the operator's cleanup (test) or commit (failover). */
    | 'Completed'
    /** A step failed; `cleanedUp` says whether what it created is gone. */
    | 'Failed'
    | 'CleaningUp'
    /** Cleanup removed everything the drill created: the drill counts (test failover). */
    | 'CleanedUp'
    | 'CleanupFailed'
    /** A failover whose commit dropped the older recovery points. */
    | 'Committed';
