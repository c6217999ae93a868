import { handleProviderCommand } from '../../../shared/contracts/commandHandler';
import { validateEvent } from '../../../shared/contracts/validate';
import {
    allowedOperations,
    allowedOperationsLine,
    operationNotAllowed,
    PROTECTED_ITEM_OPERATIONS,
} from '../../../shared/failover/allowedOperations';
import { failoverRpoSeconds } from '../../../shared/failover/plannedFailover';
import { plannedFailoverShutdownTimeoutSeconds } from '../../../shared/failover/settings';
import { PROTECTION_STATES, ProtectionState } from '../../../shared/state/protectedItems';
import { fakeChannel, NOW, signedDelivery } from '../contracts/fakeChannel';

const shutdownCompleted = (vmId = 'vm-a1') => ({
    type: 'FailoverShutdownCompleted',
    version: 1,
    vmId,
    failoverId: 'fo-job-1',
    shutDownAt: '2025-01-15T10:29:30Z',
    cycleId: 'final-1',
    logs: [
        { diskId: 'd0', sequence: 8, logId: 'log-8', bytes: 4096 },
        { diskId: 'd1', sequence: 5, logId: 'log-5', bytes: 0 },
    ],
});

describe('FailoverShutdownCompleted in the command handler', () => {
    it('raises FailoverShutdownCompleted on failover:{vmId} with the final cycle as the orchestration reads it', async () => {
        const channel = fakeChannel();
        channel.runningInstances.add('failover:vm-a1');
        const outcome = await handleProviderCommand(signedDelivery(shutdownCompleted()), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', disposition: 'processed', notes: [] });
        expect(channel.writes[0]).toEqual({
            kind: 'raise',
            instanceId: 'failover:vm-a1',
            eventName: 'FailoverShutdownCompleted',
            payload: {
                vmId: 'vm-a1',
                failoverId: 'fo-job-1',
                shutDownAt: '2025-01-15T10:29:30Z',
                cycleId: 'final-1',
                logs: shutdownCompleted().logs,
                at: NOW.toISOString(),
            },
        });
    });

    it('a confirmation with no failover running is completed with a note (the failover was given up)', async () => {
        const channel = fakeChannel();
        const outcome = await handleProviderCommand(signedDelivery(shutdownCompleted()), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', notes: [expect.stringContaining('failover:vm-a1')] });
    });

    it('a confirmation without logs is invalid: the final cycle names every disk', async () => {
        const channel = fakeChannel();
        const outcome = await handleProviderCommand(
            signedDelivery({ ...shutdownCompleted(), logs: [] }),
            channel.ports,
        );
        expect(outcome).toMatchObject({ action: 'deadLetter', reason: 'MESSAGE_INVALID' });
        expect(channel.writes).toEqual([]);
    });

    it('the events the pipeline sends pass their schemas', () => {
        expect(
            validateEvent({
                type: 'ShutdownForFailover',
                version: 1,
                vmId: 'vm-a1',
                failoverId: 'fo-job-1',
                respondBy: '2025-01-15T10:45:00.000Z',
                reason: 'Planned failover to Azure (job 1).',
            }),
        ).toMatchObject({ type: 'ShutdownForFailover' });
        expect(() => validateEvent({ type: 'CancelFailoverShutdown', version: 1, vmId: 'vm-a1', reason: 'x' })).toThrow(
            /failoverId/,
        );
    });
});

describe('allowed operations (ASR names)', () => {
    it.each<[ProtectionState, string | undefined, string[]]>([
        [
            'Protected',
            'None',
            ['TestFailover', 'PlannedFailover', 'UnplannedFailover', 'RepairReplication', 'DisableProtection'],
        ],
        ['Protected', 'TestFailoverCleanupPending', ['TestFailoverCleanup', 'DisableProtection']],
        ['Protected', 'TestFailoverInProgress', []],
        ['PlannedFailoverInProgress', 'None', []],
        ['FailedOver', 'None', ['ChangePit', 'Commit']],
        ['ChangeRecoveryPointInProgress', 'None', []],
        ['FailoverFailed', 'None', ['UnplannedFailover', 'DisableProtection']],
        ['FailoverCommitted', 'None', ['Failback', 'DisableProtection']],
        ['FailedBack', 'None', ['ReverseReplicate', 'DisableProtection']],
        ['FailbackInProgress', 'None', []],
        ['ReprotectInProgress', 'None', []],
        ['InitialReplicationInProgress', undefined, []],
    ])('%s / %s → %j', (protectionState, testFailoverState, expected) => {
        expect(allowedOperations({ protectionState, testFailoverState })).toEqual(expected);
    });

    it('only names operations of the list, and a refusal names the state and what is allowed', () => {
        for (const state of Object.keys(PROTECTION_STATES) as ProtectionState[]) {
            for (const op of allowedOperations({ protectionState: state }))
                expect(PROTECTED_ITEM_OPERATIONS).toContain(op);
        }
        const refusal = operationNotAllowed(
            { vmId: 'vm1', protectionState: 'FailedOver', protectionStateDescription: 'Failed over' },
            'a planned failover needs a protected VM',
        );
        expect(refusal).toMatchObject({ code: 'CONFLICT', details: { allowedOperations: ['ChangePit', 'Commit'] } });
        expect(refusal.message).toBe(
            'VM vm1 is failed over; a planned failover needs a protected VM; allowed operations: ChangePit, Commit.',
        );
        expect(allowedOperationsLine({ protectionState: 'CommittingFailover' })).toBe(
            'no operation is allowed until the running job ends',
        );
    });
});

describe('failover RPO and the shutdown setting', () => {
    it('is 0 when the point was captured after the last write (planned), else the seconds written after it', () => {
        expect(failoverRpoSeconds('2025-01-15T10:30:00Z', '2025-01-15T10:29:30Z')).toBe(0);
        expect(failoverRpoSeconds('2025-01-15T10:30:00Z', '2025-01-15T10:30:00Z')).toBe(0);
        expect(failoverRpoSeconds('2025-01-15T10:25:00Z', '2025-01-15T10:30:00.900Z')).toBe(300);
    });

    it('PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS defaults to 15 minutes and refuses a useless value, naming it', () => {
        expect(plannedFailoverShutdownTimeoutSeconds({})).toBe(900);
        expect(plannedFailoverShutdownTimeoutSeconds({ PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS: '60' })).toBe(60);
        expect(() => plannedFailoverShutdownTimeoutSeconds({ PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS: '0' })).toThrow(
            /PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS must be 10 to 86400 seconds, got 0/,
        );
        expect(() =>
            plannedFailoverShutdownTimeoutSeconds({ PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS: 'soon' }),
        ).toThrow(/PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS/);
    });
});
