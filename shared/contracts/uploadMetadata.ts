/**
 * What a provider says about an uploaded log in its blob metadata, and the consistency enum that
 * CycleCompleted, recovery points and the API share. Azure metadata names are case-insensitive; the contract
 * writes them in lower case. docs/provider-contract.md restates this; a test checks it.
 */

/** How consistent the point a cycle ends is. The one spelling, everywhere. */
export const CONSISTENCIES = ['CrashConsistent', 'AppConsistent'] as const;
export type Consistency = (typeof CONSISTENCIES)[number];

/**
 * The spelling the merge read before contract version 1 was published. Still read (a log uploaded by an older
 * provider during an upgrade is not quarantined), never written; docs/provider-contract.md marks it deprecated.
 */
export const DEPRECATED_CONSISTENCY_SPELLINGS: Readonly<Record<string, Consistency>> = {
    crash: 'CrashConsistent',
    app: 'AppConsistent',
};

/** The metadata names, lower case. */
export const LOG_METADATA_KEYS = {
    /** The cycle the log belongs to: the same on every disk's log of the cycle (the ID rule). */
    cycleId: 'cycleid',
    /** One of CONSISTENCIES; absent = CrashConsistent. */
    consistency: 'consistency',
    /** When the provider captured the cycle (the instant rule); RPO is measured from it. */
    capturedAt: 'capturedat',
    /** `true` for a resynchronization log; absent or `false` otherwise. */
    resync: 'resync',
} as const;

/** The consistency a log's metadata value means (absent = CrashConsistent); undefined for a value it cannot mean. */
export function consistencyOfMetadata(written: string | undefined): Consistency | undefined {
    if (written === undefined) return 'CrashConsistent';
    if ((CONSISTENCIES as readonly string[]).includes(written)) return written as Consistency;
    return DEPRECATED_CONSISTENCY_SPELLINGS[written];
}
