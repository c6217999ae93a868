import { assessReplicationHealth, healthThresholds, withReplicaRepairs } from '../../../shared/health';

const t0 = Date.parse('2025-03-01T12:00:00Z');
const at = (minutes: number) => new Date(t0 + minutes * 60_000).toISOString();

describe('replication health', () => {
    it('scales RPO thresholds with the copy frequency', () => {
        expect(healthThresholds(30)).toMatchObject({ rpoWarningSeconds: 360, rpoCriticalSeconds: 1980 });
        expect(healthThresholds(300)).toMatchObject({ rpoWarningSeconds: 900, rpoCriticalSeconds: 3600 });
        expect(healthThresholds(900)).toMatchObject({ rpoWarningSeconds: 2100, rpoCriticalSeconds: 7200 });
    });

    it('is Normal, then Warning, then Critical as the RPO grows, and says when it will change next', () => {
        const base = { copyFrequencySeconds: 300, monitoringSince: at(0), lastCapturedAt: at(0) };
        const normal = assessReplicationHealth({ ...base, now: at(10), lastHeartbeatAt: at(10) });
        expect(normal).toMatchObject({ health: 'Normal', reasons: [], rpoSeconds: 600 });
        expect(normal.nextThresholdAt).toBe(new Date(t0 + 901_000).toISOString());
        const warning = assessReplicationHealth({ ...base, now: at(16), lastHeartbeatAt: at(16) });
        expect(warning.health).toBe('Warning');
        expect(warning.reasons[0]).toMatchObject({
            code: 'RpoWarningThresholdExceeded',
            message: expect.stringContaining('16 min'),
        });
        const critical = assessReplicationHealth({ ...base, now: at(61), lastHeartbeatAt: at(61) });
        expect(critical.reasons.map((r) => r.code)).toEqual(['RpoCriticalThresholdExceeded']);
        expect(critical.health).toBe('Critical');
    });

    it('warns when the provider has been silent for 15 minutes and is Critical after an hour', () => {
        const base = { copyFrequencySeconds: 30, monitoringSince: at(0) };
        expect(
            assessReplicationHealth({ ...base, now: at(16), lastCapturedAt: at(16) }).reasons.map((r) => r.code),
        ).toEqual(['ProviderHeartbeatMissing']);
        expect(assessReplicationHealth({ ...base, now: at(61), lastCapturedAt: at(61) }).health).toBe('Critical');
    });

    it('is Critical for a required resync or a non-recoverable error, Warning for a merge being retried', () => {
        const base = { copyFrequencySeconds: 300, monitoringSince: at(0), lastCapturedAt: at(0), now: at(1) };
        const resync = assessReplicationHealth({
            ...base,
            resyncRequired: { reason: 'ChainGap', detail: 'log 9 missing', at: at(1) },
        });
        expect(resync).toMatchObject({ health: 'Critical', reasons: [{ code: 'ResyncRequired' }] });
        const broken = assessReplicationHealth({
            ...base,
            blockingError: { code: 'CHAIN_BROKEN', message: 'x', at: at(1) },
        });
        expect(broken.reasons[0]).toMatchObject({ code: 'NonRecoverableError', errorCode: 'CHAIN_BROKEN' });
        const merge = assessReplicationHealth({
            ...base,
            mergeFailure: { code: 'TRANSIENT', message: 'busy', since: at(1) },
        });
        expect(merge).toMatchObject({ health: 'Warning', reasons: [{ code: 'MergeFailing' }] });
    });
});

describe('a replica being repaired', () => {
    const base = { now: at(1), copyFrequencySeconds: 300, monitoringSince: at(0), lastHeartbeatAt: at(1) };

    it('is never Normal while a disk row holds a write intent', () => {
        const assessed = assessReplicationHealth({
            ...base,
            disksBeingRepaired: [{ diskId: 'd1', applyingSequence: 7 }],
        });
        expect(assessed.health).toBe('Warning');
        expect(assessed.reasons).toEqual([
            expect.objectContaining({ code: 'ReplicaBeingRepaired', message: expect.stringContaining('d1 (log 7)') }),
        ]);
        expect(assessReplicationHealth(base).health).toBe('Normal');
    });

    it('overlays a recorded assessment without hiding a worse one', () => {
        const disks = [{ diskId: 'd1', applyingSequence: 2 }];
        expect(withReplicaRepairs({ health: 'Normal', reasons: [] }, disks)).toMatchObject({
            health: 'Warning',
            reasons: [{ code: 'ReplicaBeingRepaired' }],
        });
        const critical = {
            health: 'Critical' as const,
            reasons: [{ code: 'ResyncRequired' as const, severity: 'Critical' as const, message: 'x' }],
        };
        expect(withReplicaRepairs(critical, disks).health).toBe('Critical');
        expect(withReplicaRepairs({ health: 'Normal', reasons: [] }, [])).toEqual({ health: 'Normal', reasons: [] });
    });
});
