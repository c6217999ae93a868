import { HvrError } from '../../../shared/errors';
import { appendEvent, listEvents, pruneEvents } from '../../../shared/state/events';
import { createJob, getJob, newJob, updateJob } from '../../../shared/state/jobs';
import {
    createProtectedItem,
    getProtectedItem,
    PROTECTION_STATES,
    ProtectedItem,
    StateScope,
    updateProtectedItem,
} from '../../../shared/state/protectedItems';
import { testStorage, uniqueName } from '../../support/azurite';

const scope = (): StateScope => ({ conn: testStorage(), tablePrefix: uniqueName('s') });

function item(vmId: string): ProtectedItem {
    return {
        vmId,
        siteId: 'site1',
        vmName: vmId,
        generation: 1,
        policyName: 'gold',
        disks: [{ diskId: 'os', sizeBytes: 1024 ** 3, logicalSectorBytes: 512, isOsDisk: true }],
        protectionState: 'Protected',
        protectionStateDescription: PROTECTION_STATES.Protected,
        resynchronizationState: 'None',
        replicationHealth: 'Normal',
        healthReasons: [],
        createdAt: '2025-01-01T00:00:00.000Z',
        updatedAt: '2025-01-01T00:00:00.000Z',
    };
}

describe('lifecycle state tables', () => {
    it('writes a protected item only when a field changes, and survives a concurrent writer', async () => {
        const s = scope();
        await createProtectedItem(s, item('vm/1'));
        await expect(createProtectedItem(s, item('vm/1'))).rejects.toMatchObject({ code: 'CONFLICT' });
        const same = await updateProtectedItem(
            s,
            'vm/1',
            () => ({ replicationHealth: 'Normal' }),
            '2025-01-01T01:00:00Z',
        );
        expect(same.changed).toBe(false);
        // Five writers read the same version at once; each replaces the whole row, so without the ETag check
        // and the re-read on 412 all but one change would be lost.
        const fields = [
            'lastHeartbeatAt',
            'lastCapturedAt',
            'lastRecoveryPointId',
            'lastRecoveryPointAt',
            'resyncReason',
        ];
        const results = await Promise.all(
            fields.map((field) =>
                updateProtectedItem(s, 'vm/1', () => ({ [field]: `value-${field}` }), '2025-01-01T02:00:00Z'),
            ),
        );
        expect(results.every((r) => r.changed)).toBe(true);
        const stored = (await getProtectedItem(s, 'vm/1')) as unknown as Record<string, unknown>;
        for (const field of fields) expect(stored[field]).toBe(`value-${field}`);
        await expect(updateProtectedItem(s, 'missing', () => ({}), 'x')).rejects.toBeInstanceOf(HvrError);
    });

    it("stores a protected item's instants canonical, whatever form the real engine handed them in", async () => {
        const s = scope();
        await createProtectedItem(s, item('vm/2'));
        await updateProtectedItem(
            s,
            'vm/2',
            () => ({ lastCapturedAt: '2026-12-02T03:50:37.69Z', lastRecoveryPointAt: '2026-12-02T03:50:37Z' }),
            '2026-12-02T03:50:38.5Z',
        );
        expect(await getProtectedItem(s, 'vm/2')).toMatchObject({
            lastCapturedAt: '2026-12-02T03:50:37.690Z',
            lastRecoveryPointAt: '2026-12-02T03:50:37.000Z',
            updatedAt: '2026-12-02T03:50:38.500Z',
        });
    });

    it('stores jobs with ASR states, tasks, errors and times', async () => {
        const s = scope();
        await createJob(
            s,
            newJob(
                'job-1',
                'EnableProtection',
                'vm1',
                ['Prerequisites check', 'Enable replication'],
                '2025-01-01T00:00:00Z',
            ),
        );
        await updateJob(s, 'job-1', [
            { type: 'taskStarted', task: 'Prerequisites check', at: '2025-01-01T00:00:01Z' },
            { type: 'taskSucceeded', task: 'Prerequisites check', at: '2025-01-01T00:00:02Z' },
            {
                type: 'taskFailed',
                task: 'Enable replication',
                at: '2025-01-01T00:00:03Z',
                error: { code: 'REPLICA_STATE_INVALID', message: 'wrong size', recoverable: false },
            },
        ]);
        const job = await getJob(s, 'job-1');
        expect(job).toMatchObject({
            state: 'Failed',
            // Stored canonical (three fractional digits), as the real Durable engine may shorten them.
            startTime: '2025-01-01T00:00:01.000Z',
            endTime: '2025-01-01T00:00:03.000Z',
        });
        expect(job?.createdAt).toBe('2025-01-01T00:00:00.000Z');
        expect(job?.tasks[0]).toMatchObject({
            startTime: '2025-01-01T00:00:01.000Z',
            endTime: '2025-01-01T00:00:02.000Z',
        });
        expect(job?.tasks.map((t) => t.state)).toEqual(['Succeeded', 'Failed']);
        expect(job?.errors).toEqual([
            expect.objectContaining({ code: 'REPLICA_STATE_INVALID', task: 'Enable replication' }),
        ]);
        // A finished job does not change again, even if a replayed step writes to it.
        await updateJob(s, 'job-1', [{ type: 'jobSucceeded', at: '2025-01-01T00:00:04Z' }]);
        expect((await getJob(s, 'job-1'))?.state).toBe('Failed');
        await expect(updateJob(s, 'nope', [])).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('keeps events 72 hours: older ones are pruned', async () => {
        const s = scope();
        const base = Date.parse('2025-01-10T00:00:00Z');
        const at = (hours: number) => new Date(base + hours * 3600_000).toISOString();
        await appendEvent(s, {
            vmId: 'vm1',
            eventId: 'old',
            occurredAt: at(0),
            kind: 'K',
            severity: 'Info',
            message: 'old',
        });
        await appendEvent(s, {
            vmId: 'vm2',
            eventId: 'old2',
            occurredAt: at(1),
            kind: 'K',
            severity: 'Info',
            message: 'old',
        });
        await appendEvent(s, {
            vmId: 'vm1',
            eventId: 'mid',
            occurredAt: at(50),
            kind: 'K',
            severity: 'Warning',
            message: 'mid',
        });
        // Appending for vm1 at 73 h prunes vm1's events older than 72 h.
        await appendEvent(s, {
            vmId: 'vm1',
            eventId: 'new',
            occurredAt: at(73),
            kind: 'K',
            severity: 'Info',
            message: 'new',
        });
        expect((await listEvents(s, { vmId: 'vm1' })).map((e) => e.eventId)).toEqual(['new', 'mid']);
        expect(await pruneEvents(s, new Date(at(74 - 72)))).toBe(1);
        expect((await listEvents(s)).map((e) => e.eventId)).toEqual(['new', 'mid']);
    });
});
