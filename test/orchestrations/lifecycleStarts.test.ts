import '../../orchestrations/resync';
import { HvrError } from '../../shared/errors';
import { isAlreadyExists, isInstanceMissing, startOnce } from '../../shared/lifecycle/durableClientErrors';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { REPLICATION_MONITOR } from '../../orchestrations/replicationMonitor';
import { durableClientBindings, functionRegistry, invokeFunction } from '../../packages/functions-local/src';
import { LifecycleHarness, START } from './lifecycle/harness';

describe('"already exists" on start, whichever way the engine reports it', () => {
    it('recognises a 409, an HTTP 500 carrying the backend message, and our CONFLICT', () => {
        const unexpected = (status: number, details: unknown) =>
            new Error(
                `The operation failed with an unexpected status code: ${status}. Details: ${JSON.stringify(details)}`,
            );
        expect(isAlreadyExists(unexpected(409, ''))).toBe(true);
        expect(
            isAlreadyExists(
                unexpected(500, {
                    Message: 'Something went wrong while processing your request',
                    ExceptionMessage: 'An Orchestration instance with the status Running already exists.',
                    ExceptionType: 'DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException',
                }),
            ),
        ).toBe(true);
        expect(
            isAlreadyExists(
                new HvrError('CONFLICT', 'An orchestration instance with the status Running already exists: x'),
            ),
        ).toBe(true);
        expect(isAlreadyExists(unexpected(500, { Message: 'storage unavailable' }))).toBe(false);
        expect(isAlreadyExists(unexpected(400, 'already exists'))).toBe(false);
        expect(isAlreadyExists('already exists')).toBe(false);
    });

    it('startOnce answers alreadyRunning for a running id and rethrows anything else', async () => {
        const h = new LifecycleHarness();
        try {
            const input = {
                vmId: 'vmS',
                siteId: 'site1',
                diskIds: ['os'],
                copyFrequencySeconds: 300,
                monitoringSince: START.toISOString(),
                generation: 0,
            };
            const id = instanceIds.replicationMonitor('vmS');
            expect(await startOnce(h.runtime, REPLICATION_MONITOR, id, input)).toBe('started');
            expect(await startOnce(h.runtime, REPLICATION_MONITOR, id, input)).toBe('alreadyRunning');
            const broken = {
                startNew: () =>
                    Promise.reject(
                        new Error('The operation failed with an unexpected status code: 500. Details: "boom"'),
                    ),
            };
            await expect(startOnce(broken, REPLICATION_MONITOR, id, input)).rejects.toThrow('boom');
        } finally {
            await h.close();
        }
    });
});

describe('events to a lifecycle instance are raised whatever its transient status', () => {
    it('the resync raises to a monitor that is Pending; only a missing one is instanceMissing', async () => {
        const h = new LifecycleHarness();
        try {
            const notify = (vmId: string) =>
                invokeFunction(
                    functionRegistry().get('resyncNotifyMonitor'),
                    { vmId, name: lifecycleEvents.resyncProgress, payload: { vmId, at: START.toISOString() } },
                    { bindings: [durableClientBindings(h.runtime)] },
                );
            expect((await notify('nobody')).result).toBe('instanceMissing');
            const id = instanceIds.replicationMonitor('vmP');
            await h.runtime.startNew(REPLICATION_MONITOR, {
                instanceId: id,
                input: {
                    vmId: 'vmP',
                    siteId: 'site1',
                    diskIds: ['os'],
                    copyFrequencySeconds: 300,
                    monitoringSince: START.toISOString(),
                    generation: 0,
                },
            });
            expect((await h.runtime.getStatus(id))?.runtimeStatus).toBe('Pending');
            expect((await notify('vmP')).result).toBe('raised');
            expect(isInstanceMissing(new Error("No instance with ID 'x' found."))).toBe(true);
        } finally {
            await h.close();
        }
    });
});
