import type { ContainerClient } from '@azure/storage-blob';
import { BlobInstanceStore, openPersistentState, stateContainerName } from '../src/durable/blobStore';
import { TaskHubLease } from '../src/durable/hubLease';
import { planRecovery } from '../src/durable/recovery';
import { newInstance, type InstanceState } from '../src/durable/store';
import { startAzurite, type RunningAzurite } from '../src/azurite';
import { connectionFromString } from '../src/storage';

const AT = new Date('2025-05-01T08:00:00.000Z');

function running(id: string, patch: Partial<InstanceState> = {}): InstanceState {
    const state = newInstance(AT, id, 'orch', undefined);
    return { ...state, runtimeStatus: 'Running', inbox: [], executionId: `${id}-x`, ...patch };
}

describe('planRecovery: what a resumed runtime sets going from saved state alone', () => {
    it('re-runs activities without a result, arms unfired timers, runs instances with an inbox', () => {
        const a = running('a', {
            pending: {
                0: { kind: 'activity', name: 'copy', input: '"disk"' },
                1: { kind: 'activity', name: 'copy', input: '"done"' },
                2: { kind: 'timer', fireAt: '2025-05-01T09:00:00.000Z', fired: false },
                3: { kind: 'timer', fireAt: '2025-05-01T07:00:00.000Z', fired: true },
            },
            inbox: [
                { kind: 'TaskCompleted', executionId: 'a-x', taskScheduledId: 1, result: '1' },
                { kind: 'TimerFired', executionId: 'a-x', timerId: 3, fireAt: '2025-05-01T07:00:00.000Z' },
            ],
        });
        const idle = running('idle');
        const done = { ...running('done'), runtimeStatus: 'Completed' as const, pending: {} };
        const plan = planRecovery([a, idle, done]);
        expect(plan.ready).toEqual(['a']);
        expect(plan.activities).toEqual([
            { instanceId: 'a', executionId: 'a-x', taskScheduledId: 0, name: 'copy', input: '"disk"' },
        ]);
        expect(plan.timers).toEqual([
            { instanceId: 'a', executionId: 'a-x', timerId: 2, fireAtMs: Date.parse('2025-05-01T09:00:00.000Z') },
        ]);
        expect(plan.children).toEqual([]);
        expect(plan.messages).toEqual([]);
    });

    it('creates a child never created, and delivers a finished child’s completion its parent lacks, once', () => {
        const parent = running('p', {
            pending: {
                0: { kind: 'subOrchestration', name: 'child', instanceId: 'p:0', input: '1', idWasGiven: false },
                1: { kind: 'subOrchestration', name: 'child', instanceId: 'c1', input: '2', idWasGiven: true },
            },
        });
        const completion = {
            kind: 'SubOrchestrationCompleted' as const,
            executionId: 'p-x',
            taskScheduledId: 1,
            result: '"ok"',
        };
        const child: InstanceState = {
            ...running('c1'),
            runtimeStatus: 'Completed',
            parent: { instanceId: 'p', executionId: 'p-x', taskScheduledId: 1 },
            outbox: [{ instanceId: 'p', message: completion }],
        };
        const plan = planRecovery([parent, child]);
        expect(plan.children).toEqual([
            {
                parent: { instanceId: 'p', executionId: 'p-x', taskScheduledId: 0 },
                name: 'child',
                instanceId: 'p:0',
                input: '1',
            },
        ]);
        expect(plan.messages).toEqual([{ instanceId: 'p', message: completion }]);
        // Already in the parent's inbox: not sent twice.
        const delivered = planRecovery([{ ...parent, inbox: [completion] }, child]);
        expect(delivered.messages).toEqual([]);
        expect(delivered.ready).toEqual(['p']);
        // Already taken by the parent (no longer pending): stale, not sent.
        const taken = planRecovery([{ ...parent, pending: {} }, child]);
        expect(taken.messages).toEqual([]);
    });
});

describe('durable state in blobs, owned through a lease', () => {
    let azurite: RunningAzurite;
    let hub = 0;
    const nextHub = () => `StateHub${++hub}${Date.now().toString(36)}`;
    const containerOf = (taskHub: string): ContainerClient =>
        connectionFromString(azurite.connectionString).blob.getContainerClient(stateContainerName(taskHub));

    beforeAll(async () => {
        azurite = await startAzurite();
    });
    afterAll(async () => {
        await azurite.stop();
    });

    it('names a container per task hub and rejects a hub that cannot name one', () => {
        expect(stateContainerName('TestHubName')).toBe('testhubname-embedded');
        expect(() => stateContainerName('my_hub')).toThrow(/cannot name a blob container/);
    });

    it('keeps instances across stores, and a write over another writer’s fails with CONFLICT', async () => {
        const container = containerOf(nextHub());
        const first = new BlobInstanceStore(container);
        expect(await first.load()).toBe(0);
        const state = running('job/1?x');
        await first.put(state);
        await first.put({ ...state, customStatus: '"step 2"' });

        const second = new BlobInstanceStore(container);
        expect(await second.load()).toBe(1);
        expect(await second.get('job/1?x')).toMatchObject({ instanceId: 'job/1?x', customStatus: '"step 2"' });
        await second.put({ ...state, customStatus: '"step 3"' });

        await expect(first.put({ ...state, customStatus: '"stale"' })).rejects.toMatchObject({
            code: 'CONFLICT',
            message: expect.stringMatching(/changed .* by another writer/),
        });
        // A new instance is created only if none exists.
        const third = new BlobInstanceStore(container);
        await third.load();
        await third.delete('job/1?x');
        await expect(second.put(running('job/1?x'))).rejects.toMatchObject({ code: 'CONFLICT' });
        expect(await new BlobInstanceStore(container).load()).toBe(0);
    });

    it('says who owns the task hub and since when: exits with ifOwned exit, waits for the lease otherwise', async () => {
        const taskHub = nextHub();
        const blob = connectionFromString(azurite.connectionString).blob;
        const owner = await openPersistentState(blob, taskHub, { owner: 'host A' });
        await expect(
            TaskHubLease.acquire(containerOf(taskHub), { owner: 'host B', ifOwned: 'exit' }),
        ).rejects.toMatchObject({
            code: 'CONFLICT',
            message: expect.stringContaining(`is owned by host A since ${owner.lease.owner.since}`),
        });

        const lines: string[] = [];
        const waiting = TaskHubLease.acquire(containerOf(taskHub), {
            owner: 'host C',
            retryMs: 200,
            log: (l) => lines.push(l),
        });
        let tookIt = false;
        void waiting.then(() => (tookIt = true));
        await new Promise((r) => setTimeout(r, 1000));
        expect(tookIt).toBe(false);
        expect(lines[0]).toMatch(/owned by host A since .*Waiting for it/);
        await owner.lease.release();
        const second = await waiting;
        expect(second.owner.owner).toBe('host C');
        await second.release();
    });

    it('a lease nobody renews expires: the next host takes it within the lease length', async () => {
        const taskHub = nextHub();
        const dead = await TaskHubLease.acquire(containerOf(taskHub), { owner: 'killed host' });
        // Stands for a killed host: no renewal, no release.
        (dead as unknown as { released: boolean }).released = true;
        const started = Date.now();
        const next = await TaskHubLease.acquire(containerOf(taskHub), { owner: 'next host', retryMs: 500 });
        expect(Date.now() - started).toBeLessThan(60_000);
        await next.release();
    });

    it('a host that stalled past its lease while another took the hub is told at its next renewal, and stops', async () => {
        const taskHub = nextHub();
        const lost: string[] = [];
        const stalled = await TaskHubLease.acquire(containerOf(taskHub), {
            owner: 'stalled host',
            onLost: (why) => lost.push(why),
        });
        // Stands for a host paused longer than its lease (a stopped VM, a debugger): its renewal did not run.
        const internals = stalled as unknown as { renewal: NodeJS.Timeout; renew(): Promise<void>; released: boolean };
        clearTimeout(internals.renewal);
        const next = await TaskHubLease.acquire(containerOf(taskHub), { owner: 'next host', retryMs: 500 });
        await internals.renew();
        expect(lost).toEqual([expect.stringMatching(/^the task hub lease was lost \(.*\); another host took it$/)]);
        expect(internals.released).toBe(true);
        // It gives up for good: it neither renews again nor takes the lease back from the new owner on release.
        await stalled.release();
        expect(
            (await TaskHubLease.acquire(containerOf(taskHub), { owner: 'third', ifOwned: 'exit' }).catch((e) => e))
                .code,
        ).toBe('CONFLICT');
        await next.release();
    }, 90_000);
});
