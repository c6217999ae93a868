import {
    CHAIN_GAP_CYCLES,
    chainGapMinSecondsFromEnv,
    chainGapTimeoutSeconds,
    ChainGapFacts,
    DEFAULT_CHAIN_GAP_MIN_SECONDS,
    judgeChainGap,
} from '../../../shared/replica/chainGap';

const now = new Date('2026-03-01T12:00:00Z');
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000).toISOString();

function facts(overrides: Partial<ChainGapFacts> = {}): ChainGapFacts {
    return {
        diskId: 'os',
        missingSequence: 7,
        waitingSince: ago(600),
        now,
        copyFrequencySeconds: 30,
        minSeconds: 120,
        uploads: {},
        uploadInProgress: false,
        ...overrides,
    };
}

describe('chain gap rule', () => {
    it('waits a few copy-frequency cycles, never less than the lower bound', () => {
        expect(chainGapTimeoutSeconds(30, 120)).toBe(120);
        expect(chainGapTimeoutSeconds(300, 120)).toBe(CHAIN_GAP_CYCLES * 300);
        expect(chainGapTimeoutSeconds(900, 120)).toBe(CHAIN_GAP_CYCLES * 900);
        // An unreadable policy counts as the policy default (5 minutes).
        expect(chainGapTimeoutSeconds(undefined, 120)).toBe(CHAIN_GAP_CYCLES * 300);
        expect(chainGapMinSecondsFromEnv({})).toBe(DEFAULT_CHAIN_GAP_MIN_SECONDS);
        expect(chainGapMinSecondsFromEnv({ MERGE_GAP_MIN_SECONDS: '5' })).toBe(5);
        expect(() => chainGapMinSecondsFromEnv({ MERGE_GAP_MIN_SECONDS: 'soon' })).toThrow(/MERGE_GAP_MIN_SECONDS/);
    });

    it('a log the provider reported and that is not there is lost once the wait is over', () => {
        const reported = { reportedSequence: 9, reportedCycleId: 'c9' };
        expect(judgeChainGap(facts({ waitingSince: ago(100), uploads: reported }))).toMatchObject({ lost: false });
        const verdict = judgeChainGap(facts({ waitingSince: ago(121), uploads: reported }));
        expect(verdict).toMatchObject({ lost: true });
        expect(verdict.lost && verdict.detail).toMatch(/reported cycles up to log 9 \(c9\)/);
    });

    it('the wait is over early once a few cycles from the missing log are reported, not before the bound', () => {
        const three = { reportedSequence: 7 + CHAIN_GAP_CYCLES - 1 };
        expect(judgeChainGap(facts({ waitingSince: ago(10), minSeconds: 5, uploads: three }))).toMatchObject({
            lost: true,
        });
        expect(judgeChainGap(facts({ waitingSince: ago(4), minSeconds: 5, uploads: three }))).toMatchObject({
            lost: false,
        });
        const two = { reportedSequence: 7 + CHAIN_GAP_CYCLES - 2 };
        const early = judgeChainGap(facts({ waitingSince: ago(10), minSeconds: 5, uploads: two }));
        expect(early).toMatchObject({ lost: false });
        expect(!early.lost && early.why).toMatch(/once 3 cycles from it are reported; 2 are/);
    });

    it('a slow upload in progress is never a lost log, reported or not', () => {
        const verdict = judgeChainGap(
            facts({
                waitingSince: ago(7200),
                uploads: { reportedSequence: 20, grantExpiresOn: ago(60) },
                uploadInProgress: true,
            }),
        );
        expect(verdict).toMatchObject({ lost: false });
        expect(!verdict.lost && verdict.why).toMatch(/in progress/);
    });

    it('an unreported log with a grant still valid keeps waiting: its upload may be under way', () => {
        const verdict = judgeChainGap(
            facts({ waitingSince: ago(3600), uploads: { reportedSequence: 6, grantExpiresOn: ago(-600) } }),
        );
        expect(verdict).toMatchObject({ lost: false });
        expect(!verdict.lost && verdict.why).toMatch(/slow upload may still deliver it/);
    });

    it('an unreported log whose grants all expired unused is lost', () => {
        const verdict = judgeChainGap(facts({ uploads: { reportedSequence: 6, grantExpiresOn: ago(1) } }));
        expect(verdict).toMatchObject({ lost: true });
        expect(verdict.lost && verdict.detail).toMatch(/every upload grant of the disk expired/);
    });

    it('without a report or a recorded grant nothing says the log is lost', () => {
        expect(judgeChainGap(facts({ waitingSince: ago(86_400) }))).toMatchObject({ lost: false });
        expect(judgeChainGap(facts({ waitingSince: 'yesterday' }))).toMatchObject({ lost: false });
    });
});
