import {
    resyncForHeartbeat,
    resyncForLogHeader,
    resyncForMergeFailure,
    resyncForOperator,
} from '../../../shared/resync/triggers';
import { selectResyncsToStart, ResyncCandidate } from '../../../shared/resync/schedule';

const GiB = 1024 ** 3;
const now = new Date('2025-01-15T12:00:00Z');

describe('resync triggers', () => {
    describe('heartbeat: pending log bytes', () => {
        it('requires a resync for a disk whose pending bytes reach half of its size, and only that disk', () => {
            const decisions = resyncForHeartbeat(
                { pendingLogBytes: { os: 20 * GiB, data: GiB / 2 - 1, log: GiB / 2 } },
                { os: 40 * GiB, data: GiB, log: GiB },
            );
            expect(decisions.map((d) => d.diskId)).toEqual(['os', 'log']);
            expect(decisions[0]).toMatchObject({ reason: 'PendingLogBytesOverHalfDisk', immediate: false });
            expect(decisions[0]!.detail).toContain('50.0 %');
        });

        it('ignores disks it does not know and nonsense values', () => {
            expect(resyncForHeartbeat({ pendingLogBytes: { ghost: GiB, d: -1, e: NaN } }, { d: GiB, e: GiB })).toEqual(
                [],
            );
        });
    });

    describe('merge failures', () => {
        it('gives the chain up on a chain gap: the merge reports one only once the log is known lost', () => {
            const gap = {
                diskId: 'd1',
                code: 'CHAIN_GAP',
                message: 'log 7 is lost',
                waitingSince: '2025-01-15T11:45:00Z',
            };
            expect(resyncForMergeFailure(gap)).toMatchObject({ reason: 'ChainGap', diskId: 'd1' });
            expect(resyncForMergeFailure(gap)?.detail).toContain('waiting since 2025-01-15T11:45:00Z');
            expect(resyncForMergeFailure({ diskId: 'd1', code: 'CHAIN_GAP', message: 'x' })?.reason).toBe('ChainGap');
        });

        it('maps a broken chain, an unclosed log, an offline change and invalid logs to their reasons', () => {
            const reason = (code: string): string | undefined =>
                resyncForMergeFailure({ diskId: 'd', code, message: 'm' })?.reason;
            expect(reason('CHAIN_BROKEN')).toBe('ChainGap');
            expect(reason('HRL_NOT_CLOSED')).toBe('LogNotClosed');
            expect(reason('DISK_CHANGED_OFFLINE')).toBe('DiskChangedOffline');
            expect(reason('HRL_DATA_CHECKSUM')).toBe('InvalidLog');
            expect(reason('HRL_BAD_COOKIE')).toBe('InvalidLog');
        });

        it('does not resync for failures a retry may cure or that are not the log’s fault', () => {
            for (const code of [
                'TRANSIENT',
                'TIMEOUT',
                'SEQUENCE_CONDITION_NOT_MET',
                'REPLICA_STATE_INVALID',
                'UNAUTHORIZED',
            ]) {
                expect(resyncForMergeFailure({ diskId: 'd', code, message: 'm' })).toBeUndefined();
            }
        });
    });

    describe('log header', () => {
        const guid = '572fc7ff-1f03-49ab-9c2e-0123456789ab';
        it('requires a resync for a log not closed cleanly (EOLLocation 0)', () => {
            expect(resyncForLogHeader({ diskId: 'd', eolLocation: 0n, vhd2DataWriteGuid: guid }, guid)?.reason).toBe(
                'LogNotClosed',
            );
        });

        it('requires a resync when the data-write GUID changed, whatever its case', () => {
            const other = '00000000-0000-0000-0000-000000000001';
            expect(
                resyncForLogHeader({ diskId: 'd', eolLocation: 8192, vhd2DataWriteGuid: other }, guid),
            ).toMatchObject({
                reason: 'DiskChangedOffline',
            });
            expect(
                resyncForLogHeader({ diskId: 'd', eolLocation: 8192, vhd2DataWriteGuid: guid.toUpperCase() }, guid),
            ).toBe(undefined);
            expect(resyncForLogHeader({ diskId: 'd', eolLocation: 8192, vhd2DataWriteGuid: other }, undefined)).toBe(
                undefined,
            );
        });
    });

    it("an operator's request covers the whole VM and starts at once", () => {
        const d = resyncForOperator('alice@contoso', 'after restoring from backup');
        expect(d).toEqual({
            reason: 'OperatorRequested',
            detail: 'requested by alice@contoso: after restoring from backup',
            immediate: true,
        });
        expect(resyncForOperator('  ').detail).toBe('requested by an operator');
    });
});

describe('choosing the resyncs to start', () => {
    const window = { start: '18:30', end: '06:00', timeZone: 'UTC' };
    const c = (vmId: string, siteId: string, extra: Partial<ResyncCandidate> = {}): ResyncCandidate => ({
        vmId,
        siteId,
        window,
        immediate: false,
        requiredAt: '2025-01-15T10:00:00Z',
        ...extra,
    });
    const night = new Date('2025-01-15T20:00:00Z');

    it('starts nothing outside the window except an operator’s request', () => {
        const chosen = selectResyncsToStart([c('a', 's'), c('b', 's', { immediate: true })], new Set(), {}, 4, now);
        expect(chosen.map((x) => x.vmId)).toEqual(['b']);
    });

    it('keeps to the per-site limit, counting running resyncs, oldest first', () => {
        const chosen = selectResyncsToStart(
            [c('new', 's1', { requiredAt: '2025-01-15T11:00:00Z' }), c('old', 's1'), c('x', 's2'), c('y', 's2')],
            new Set(['busy']),
            { s1: 1 },
            2,
            night,
        );
        expect(chosen.map((x) => x.vmId)).toEqual(['old', 'x', 'y']);
    });

    it('never starts a second resync of a VM already running or listed twice', () => {
        const chosen = selectResyncsToStart([c('a', 's'), c('a', 's'), c('b', 's')], new Set(['b']), {}, 5, night);
        expect(chosen.map((x) => x.vmId)).toEqual(['a']);
    });
});
