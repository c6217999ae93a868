import { decideMerge, MergeAction, MergeFacts } from '../../../shared/replica/mergeDecision';

const A = 'aaaaaaaa-0000-0000-0000-000000000001';
const B = 'bbbbbbbb-0000-0000-0000-000000000002';
const PLAN = 'steps/v1/c64/r8388608';

type Row = MergeFacts['row'];
const replicating = (sequence: number, extra: Partial<Row> = {}): Row => ({
    sequence,
    lastLogId: sequence > 0 ? 'prev' : undefined,
    state: 'Replicating',
    ...extra,
});
const awaitingResync = (sequence: number, extra: Partial<Row> = {}): Row =>
    replicating(sequence, { state: 'ResyncRequired', resyncReason: 'ChainGap', ...extra });

/** [case, log n, log id, row, blob sequence, resync expects, expected action (partial)] */
const table: [string, number, string, Row, number, number | undefined, Partial<MergeAction>][] = [
    ['the next log applies', 3, A, replicating(2), 2, undefined, { kind: 'apply', resync: false }],
    ['the first log of a disk applies', 1, A, replicating(0), 0, undefined, { kind: 'apply' }],
    ['a log already applied is a duplicate', 2, A, replicating(5), 5, undefined, { kind: 'duplicate', atHead: false }],
    [
        'the last applied log again is a duplicate at the head',
        5,
        A,
        replicating(5, { lastLogId: A }),
        5,
        undefined,
        { kind: 'duplicate', atHead: true },
    ],
    [
        'another log at the applied position is superseded',
        5,
        B,
        replicating(5, { lastLogId: A }),
        5,
        undefined,
        { kind: 'superseded', holder: A },
    ],
    ['a log ahead of its predecessor waits', 7, A, replicating(5), 5, undefined, { kind: 'wait' }],
    [
        'sealed but not recorded: finish the row',
        3,
        A,
        replicating(2, { applyingSequence: 3, applyingLogId: A }),
        3,
        undefined,
        { kind: 'finish' },
    ],
    [
        'crashed mid-log without progress: apply again from the start',
        3,
        A,
        replicating(2, { applyingSequence: 3, applyingLogId: A, applyingStep: 0, applyingPlan: PLAN }),
        2,
        undefined,
        { kind: 'apply' },
    ],
    [
        'budget ran out at step 40: continue from there',
        3,
        A,
        replicating(2, { applyingSequence: 3, applyingLogId: A, applyingStep: 40, applyingPlan: PLAN }),
        2,
        undefined,
        { kind: 'continue', fromStep: 40, plan: PLAN, resync: false },
    ],
    [
        'another log holds the intent at this position',
        3,
        B,
        replicating(2, { applyingSequence: 3, applyingLogId: A, applyingStep: 40, applyingPlan: PLAN }),
        2,
        undefined,
        { kind: 'superseded', holder: A },
    ],
    ['blob ahead of the row without this log’s intent', 3, A, replicating(2), 3, undefined, { kind: 'inconsistent' }],
    ['blob behind the row', 3, A, replicating(2), 1, undefined, { kind: 'inconsistent' }],
    [
        'awaiting a resync, none running: refused',
        3,
        A,
        awaitingResync(2),
        2,
        undefined,
        { kind: 'refuse', reason: 'ChainGap' },
    ],
    [
        'awaiting a resync that expects another position: refused',
        3,
        A,
        awaitingResync(2),
        2,
        5,
        { kind: 'refuse', reason: 'ChainGap' },
    ],
    [
        'the log the running resync expects applies as a resync log',
        3,
        A,
        awaitingResync(2),
        2,
        3,
        { kind: 'apply', resync: true },
    ],
    [
        'a resync log whose budget ran out continues as a resync log',
        3,
        A,
        awaitingResync(2, { applyingSequence: 3, applyingLogId: A, applyingStep: 2, applyingPlan: PLAN }),
        2,
        3,
        { kind: 'continue', resync: true, fromStep: 2 },
    ],
    [
        'the log blob was replaced after its intent: refuse, resync',
        3,
        A,
        replicating(2, {
            applyingSequence: 3,
            applyingLogId: A,
            applyingStep: 4,
            applyingPlan: PLAN,
            applyingLogETag: '"v1"',
        }),
        2,
        undefined,
        { kind: 'replaced' },
    ],
];

describe('the exactly-once merge decision', () => {
    it.each(table)('%s', (_case, sequence, logId, row, blobSequence, resyncExpects, expected) => {
        const facts = { log: { sequence, logId }, row, blobSequence, resyncExpects, logETag: '"v2"' };
        // Rows whose intent names an ETag are compared with "v2"; the others have none recorded.
        expect(decideMerge(facts)).toMatchObject(expected);
    });

    it('never looks at anything the provider sets: a healthy disk applies a log as a regular one', () => {
        // The facts have no metadata at all; whether a log is a resync log is resyncExpects alone.
        const action = decideMerge({ log: { sequence: 3, logId: A }, row: replicating(2), blobSequence: 2 });
        expect(action).toEqual({ kind: 'apply', resync: false });
    });
});
