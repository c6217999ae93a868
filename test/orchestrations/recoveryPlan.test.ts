/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are read loosely in tests */
import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import '../../functions/apiFailover';
import '../../functions/apiRecoveryPlans';
import '../../functions/apiReplicationJobs';
import { DryRunFailoverInfrastructure } from '../../shared/failover/dryRunInfrastructure';
import { listFailoverDisks } from '../../shared/failover/failoverDisks';
import { VirtualMachineSpec } from '../../shared/failover/infrastructure';
import { setFailoverInfrastructure } from '../../shared/failover/settings';
import { HvrError } from '../../shared/errors';
import { instanceIds, lifecycleEvents } from '../../shared/lifecycle/instances';
import { webhookSignature, WEBHOOK_DELIVERY_HEADER, WEBHOOK_SIGNATURE_HEADER } from '../../shared/plans/webhook';
import { getJob, Job, listJobs } from '../../shared/state/jobs';
import { createProtectedItem, getProtectedItem } from '../../shared/state/protectedItems';
import { listRecoveryPoints } from '../../shared/state/recoveryPoints';
import { addRecoveryPoint, mapCorp, seedFailoverVm } from './lifecycle/failoverSeed';
import { ApiResponse, LifecycleHarness } from './lifecycle/harness';

/** Fails the creation of one VM's virtual machine (by VM name) while `failing` holds it. */
class FlakyInfrastructure extends DryRunFailoverInfrastructure {
    failing = new Set<string>();
    override async createVirtualMachine(spec: VirtualMachineSpec) {
        if ([...this.failing].some((vm) => spec.name.startsWith(`vm-${vm}-`))) {
            throw new HvrError('FORBIDDEN', `The identity may not create ${spec.name} (injected).`);
        }
        return super.createVirtualMachine(spec);
    }
}

const TIERS = [
    ['db1', 'db2'],
    ['app1', 'app2'],
    ['web1', 'web2'],
] as const;

function planBody(extra: { webhook?: boolean } = {}) {
    return {
        description: 'Three-tier shop',
        recoveryPoint: 'Latest',
        groups: [
            { vms: [...TIERS[0]] },
            {
                vms: TIERS[1].map((vmId) => ({ vmId, networkAdapters: [{ sourceNetwork: 'Corp' }] })),
                preActions: [
                    {
                        name: 'Check the database',
                        kind: 'Manual',
                        instructions: 'Check that the database accepts connections.',
                    },
                ],
            },
            {
                vms: [...TIERS[2]],
                ...(extra.webhook
                    ? {
                          postActions: [
                              {
                                  name: 'Switch DNS',
                                  kind: 'Webhook',
                                  urlSetting: 'PLAN_TEST_DNS_URL',
                                  secretSetting: 'PLAN_TEST_DNS_SECRET',
                                  timeoutSeconds: 5,
                              },
                          ],
                      }
                    : {}),
            },
        ],
    };
}

describe('recovery plans (durable runtime, Azurite tables and blobs, dry-run ARM)', () => {
    let h: LifecycleHarness;
    let infra: FlakyInfrastructure;
    let restoreInfra: () => void;

    beforeEach(async () => {
        h = new LifecycleHarness();
        infra = new FlakyInfrastructure();
        restoreInfra = setFailoverInfrastructure(infra);
        for (const vmId of TIERS.flat()) {
            await seedFailoverVm(h, vmId, [
                ['c1', 0x11],
                ['c2', 0x22],
            ]);
        }
        await mapCorp(h);
    });
    afterEach(async () => {
        restoreInfra();
        await h.close();
    });

    const put = (name: string, body: unknown): Promise<ApiResponse> =>
        h.http('apiRecoveryPlan', { method: 'PUT', path: `recoveryPlans/${name}`, params: { name }, body });
    const get = (name: string): Promise<ApiResponse> =>
        h.http('apiRecoveryPlan', { method: 'GET', path: `recoveryPlans/${name}`, params: { name } });
    const act = (name: string, action: string, body?: unknown): Promise<ApiResponse> =>
        h.http('apiRecoveryPlanAction', {
            method: 'POST',
            path: `recoveryPlans/${name}/${action}`,
            params: { name, action },
            ...(body !== undefined ? { body } : {}),
        });

    async function planJob(jobId: string): Promise<Job> {
        const job = await getJob(h.scope, jobId);
        if (!job) throw new Error(`no job ${jobId}`);
        return job;
    }

    const task = (job: Job, name: string) => {
        const t = job.tasks.find((x) => x.name === name);
        if (!t) throw new Error(`job ${job.jobId} has no task ${name}: ${job.tasks.map((x) => x.name).join(', ')}`);
        return t;
    };

    async function runToEnd(jobId: string, plan = 'shop'): Promise<Job> {
        const instanceId = instanceIds.recoveryPlan(plan);
        await h.runtime.advanceUntil(async () => {
            const s = await h.runtime.getStatus(instanceId);
            return ['Completed', 'Failed'].includes(s?.runtimeStatus ?? '');
        });
        const status = await h.runtime.getStatus(instanceId);
        expect(status?.runtimeStatus).toBe('Completed');
        return planJob(jobId);
    }

    /** Until the plan waits on a manual step: what GET shows then. */
    async function untilWaiting(): Promise<any> {
        let waiting: any;
        await h.runtime.advanceUntil(async () => {
            waiting = (await get('shop')).jsonBody?.properties?.waitingFor;
            return waiting !== undefined;
        });
        return waiting;
    }

    /** Every group ends before the next starts; the VMs of a group start together, after its pre-actions. */
    function expectGroupOrder(job: Job): void {
        for (let g = 1; g <= 3; g++) {
            const group = task(job, `Group ${g}`);
            expect(group.state).toBe('Succeeded');
            const vms = TIERS[g - 1]!.map((vm) => task(job, `Group ${g}: VM ${vm}`));
            for (const vm of vms) {
                expect(vm.state).toBe('Succeeded');
                expect(Date.parse(vm.startTime!)).toBeGreaterThanOrEqual(Date.parse(group.startTime!));
                expect(Date.parse(vm.endTime!)).toBeLessThanOrEqual(Date.parse(group.endTime!));
            }
            if (g > 1) {
                const previous = task(job, `Group ${g - 1}`);
                expect(Date.parse(group.startTime!)).toBeGreaterThanOrEqual(Date.parse(previous.endTime!));
            }
        }
        // The task list itself is in group order.
        const groupIndexes = [1, 2, 3].map((g) => job.tasks.findIndex((t) => t.name === `Group ${g}`));
        expect(groupIndexes).toEqual([...groupIndexes].sort((a, b) => a - b));
    }

    it('test-fails over a 3 × 2 plan in group order, held by the manual step until resumed; cleanup, failover and commit', async () => {
        const created = await put('shop', planBody());
        expect(created.status).toBe(201);
        expect(created.jsonBody).toMatchObject({ name: 'shop', properties: { vmCount: 6 } });

        // ---- test failover ----
        const started = await act('shop', 'testFailover');
        expect(started.status).toBe(202);
        const { jobId } = started.jsonBody!;
        const waiting = await untilWaiting();
        expect(waiting).toMatchObject({ action: 'Check the database', task: 'Group 2: pre-action Check the database' });
        // Held: group 1 is done, group 2's VMs have not started, and they stay so while nobody resumes.
        await h.runtime.advance(6 * 3600_000);
        let job = await planJob(jobId);
        expect(job.state).toBe('InProgress');
        expect(task(job, 'Group 1').state).toBe('Succeeded');
        expect(task(job, 'Group 2: pre-action Check the database')).toMatchObject({
            state: 'InProgress',
            detail: expect.stringContaining('Check that the database accepts connections.'),
        });
        for (const vm of [...TIERS[1], ...TIERS[2]]) {
            expect(task(job, `Group ${TIERS[1].includes(vm as never) ? 2 : 3}: VM ${vm}`).state).toBe('NotStarted');
            expect((await getProtectedItem(h.scope, vm))!.testFailoverState ?? 'None').toBe('None');
        }
        // Changes are refused while the job runs; a resume naming another action too.
        const changed = await put('shop', planBody());
        expect(changed.status).toBe(409);
        expect(changed.jsonBody!.error).toMatchObject({ code: 'CONFLICT', rule: 'PLAN_JOB_RUNNING' });
        expect((await act('shop', 'resume', { action: 'Other' })).status).toBe(409);
        expect((await act('shop', 'unplannedFailover')).status).toBe(409);
        const repeated = await act('shop', 'testFailover');
        expect(repeated.jsonBody).toMatchObject({ jobId, alreadyRunning: true });

        const resumed = await act('shop', 'resume', { action: 'Check the database', by: 'ops', comments: 'db up' });
        expect(resumed.status).toBe(202);
        job = await runToEnd(jobId);
        expect(job).toMatchObject({ kind: 'TestFailover', recoveryPlanName: 'shop', state: 'Succeeded', errors: [] });
        expect(task(job, 'Group 2: pre-action Check the database')).toMatchObject({
            state: 'Succeeded',
            detail: 'Resumed by ops: db up',
        });
        expectGroupOrder(job);
        expect(job.tasks.map((t) => t.name)).toEqual([
            'Group 1',
            'Group 1: VM db1',
            'Group 1: VM db2',
            'Group 2',
            'Group 2: pre-action Check the database',
            'Group 2: VM app1',
            'Group 2: VM app2',
            'Group 3',
            'Group 3: VM web1',
            'Group 3: VM web2',
        ]);
        const drills = new Map<string, string>();
        for (const vm of TIERS.flat()) {
            const item = (await getProtectedItem(h.scope, vm))!;
            expect(item.testFailoverState).toBe('TestFailoverCleanupPending');
            // Each VM has its own job too, named on its task.
            const vmJobs = await listJobs(h.scope, { vmId: vm });
            expect(vmJobs[0]).toMatchObject({ kind: 'TestFailover', state: 'Succeeded' });
            expect(job.tasks.find((t) => t.name.endsWith(`VM ${vm}`))!.detail).toBe(`Job ${vmJobs[0]!.jobId}`);
            drills.set(vm, item.currentDrillId!);
            expect(await listFailoverDisks(h.scope.conn, vm, item.currentDrillId!)).toHaveLength(2);
        }
        const listed = await h.http('apiReplicationJobs', {
            method: 'GET',
            path: 'replicationJobs',
            query: { recoveryPlanName: 'shop' },
        });
        expect(listed.jsonBody!.value.map((j: Job) => j.jobId)).toEqual([jobId]);

        // ---- cleanup: no manual step (actions run for the failovers only) ----
        const cleanup = await act('shop', 'testFailoverCleanup', { comments: 'drill ok' });
        expect(cleanup.status).toBe(202);
        job = await runToEnd(cleanup.jsonBody!.jobId);
        expect(job).toMatchObject({ kind: 'TestFailoverCleanup', state: 'Succeeded' });
        expect(job.tasks.some((t) => t.name.includes('pre-action'))).toBe(false);
        for (const vm of TIERS.flat()) {
            const item = (await getProtectedItem(h.scope, vm))!;
            expect(item.testFailoverState).toBe('None');
            expect(item.lastSuccessfulTestFailoverTime).toBeDefined();
            expect(await listFailoverDisks(h.scope.conn, vm, drills.get(vm)!)).toEqual([]);
        }

        // ---- unplanned failover, the manual step again ----
        const failover = await act('shop', 'unplannedFailover');
        expect(failover.status).toBe(202);
        await untilWaiting();
        expect((await act('shop', 'resume')).status).toBe(202);
        job = await runToEnd(failover.jsonBody!.jobId);
        expect(job).toMatchObject({ kind: 'UnplannedFailover', state: 'Succeeded' });
        expectGroupOrder(job);
        for (const vm of TIERS.flat()) {
            expect(await getProtectedItem(h.scope, vm)).toMatchObject({
                protectionState: 'FailedOver',
                failoverRecoveryPointId: `${vm}:c2`,
            });
        }
        expect(h.published.filter((p) => p.input.type === 'StopReplication')).toHaveLength(6);

        // ---- commit ----
        const commit = await act('shop', 'failoverCommit');
        job = await runToEnd(commit.jsonBody!.jobId);
        expect(job).toMatchObject({ kind: 'CommitFailover', state: 'Succeeded' });
        for (const vm of TIERS.flat()) {
            expect((await getProtectedItem(h.scope, vm))!.protectionState).toBe('FailoverCommitted');
            expect((await listRecoveryPoints(h.scope, vm)).map((p) => p.recoveryPointId)).toEqual([`${vm}:c2`]);
        }

        // Failback is an operation of the plan without its per-VM orchestration yet: refused, saying so.
        const failback = await act('shop', 'failback');
        expect(failback.status).toBe(409);
        expect(failback.jsonBody!.error).toMatchObject({ rule: 'PLAN_OPERATION_NOT_AVAILABLE' });
    });

    it('a VM failing in group 2 fails the job naming it; group 1 stays failed over, group 3 never starts; a retry completes the plan', async () => {
        await put('shop', planBody());
        infra.failing.add('app2');
        const first = await act('shop', 'unplannedFailover');
        await untilWaiting();
        await act('shop', 'resume');
        let job = await runToEnd(first.jsonBody!.jobId);

        expect(job.state).toBe('Failed');
        expect(task(job, 'Group 2: VM app2').state).toBe('Failed');
        expect(task(job, 'Group 2: VM app1').state).toBe('Succeeded');
        expect(task(job, 'Group 2').state).toBe('Failed');
        expect(job.errors[0]).toMatchObject({
            code: 'FORBIDDEN',
            task: 'Group 2: VM app2',
            message: expect.stringContaining('VM app2 (job '),
        });
        expect(job.errors[0]!.message).toContain('The identity may not create vm-app2-');
        expect(job.errors[1]).toMatchObject({
            task: 'Group 2',
            message: expect.stringContaining('VM app2 failed; the 1 later group(s) did not start'),
        });
        for (const t of ['Group 3', 'Group 3: VM web1', 'Group 3: VM web2'])
            expect(task(job, t).state).toBe('NotStarted');
        for (const vm of ['db1', 'db2', 'app1']) {
            expect((await getProtectedItem(h.scope, vm))!.protectionState).toBe('FailedOver');
        }
        expect((await getProtectedItem(h.scope, 'app2'))!.protectionState).toBe('FailoverFailed');
        for (const vm of TIERS[2]) expect((await getProtectedItem(h.scope, vm))!.protectionState).toBe('Protected');
        expect((await get('shop')).jsonBody!.properties.run).toMatchObject({
            operation: 'UnplannedFailover',
            state: 'Failed',
            completedSteps: ['g1:vm:db1', 'g1:vm:db2', 'g2:pre:Check the database', 'g2:vm:app1'],
        });

        // The cause fixed, the same operation continues the run: only app2 and group 3 run.
        infra.failing.clear();
        const retry = await act('shop', 'unplannedFailover');
        expect(retry.jsonBody).toMatchObject({ resumedFromJobId: first.jsonBody!.jobId, completedSteps: 4 });
        job = await runToEnd(retry.jsonBody!.jobId);
        expect(job.state).toBe('Succeeded');
        for (const t of [
            'Group 1: VM db1',
            'Group 1: VM db2',
            'Group 2: pre-action Check the database',
            'Group 2: VM app1',
        ]) {
            expect(task(job, t)).toMatchObject({ state: 'Succeeded', detail: 'Done by an earlier job of this run.' });
        }
        expect(task(job, 'Group 2: VM app2').detail).toMatch(/^Job /);
        expectGroupOrder(job);
        for (const vm of TIERS.flat())
            expect((await getProtectedItem(h.scope, vm))!.protectionState).toBe('FailedOver');
        // Only the retried VMs failed over again: db1's failover is the first job's.
        expect((await listJobs(h.scope, { vmId: 'db1' })).filter((j) => j.kind === 'UnplannedFailover')).toHaveLength(
            1,
        );
    });

    it('a planned failover of a plan: each VM shut down and synchronized by its provider, group after group', async () => {
        process.env.PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS = '600';
        try {
            expect((await put('move', { groups: [{ vms: ['db1', 'db2'] }, { vms: ['app1'] }] })).status).toBe(201);
            const started = await act('move', 'plannedFailover');
            expect(started.status).toBe(202);
            // The provider: each VM asked to shut down ships its final cycle, and the merge records its point.
            const answered: string[] = [];
            await h.runtime.advanceUntil(async () => {
                for (const p of h.published.filter((x) => x.input.type === 'ShutdownForFailover')) {
                    const { vmId, failoverId } = p.input.payload as { vmId: string; failoverId: string };
                    if (answered.includes(vmId)) continue;
                    answered.push(vmId);
                    await addRecoveryPoint(h, vmId, 'final', 0x44, 3);
                    const now = h.clock.now();
                    await h.runtime.raiseEvent(instanceIds.failover(vmId), lifecycleEvents.failoverShutdownCompleted, {
                        vmId,
                        failoverId,
                        shutDownAt: new Date(now.getTime() - 5_000).toISOString(),
                        cycleId: 'final',
                        logs: [
                            { diskId: 'os', sequence: 3, logId: `${vmId}-os-3`, bytes: 4608 },
                            { diskId: 'data', sequence: 3, logId: `${vmId}-data-3`, bytes: 4608 },
                        ],
                        at: now.toISOString(),
                    });
                }
                const s = await h.runtime.getStatus(instanceIds.recoveryPlan('move'));
                return s?.runtimeStatus === 'Completed';
            });
            const job = await planJob(started.jsonBody!.jobId);
            expect(job).toMatchObject({ kind: 'PlannedFailover', state: 'Succeeded' });
            // app1 was asked to shut down only once group 1 had failed over.
            expect(answered.slice(0, 2).sort()).toEqual(['db1', 'db2']);
            expect(answered[2]).toBe('app1');
            for (const vm of ['db1', 'db2', 'app1']) {
                expect(await getProtectedItem(h.scope, vm)).toMatchObject({
                    protectionState: 'FailedOver',
                    failoverRecoveryPointId: `${vm}:final`,
                });
            }
        } finally {
            delete process.env.PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS;
        }
    });

    it('refuses bad plans at creation, naming the rule', async () => {
        const refused = async (body: unknown, rule: string, message: RegExp, name = 'bad') => {
            const r = await put(name, body);
            expect({ status: r.status, error: r.jsonBody!.error }).toEqual({
                status: 400,
                error: { code: 'VALIDATION_FAILED', rule, message: expect.stringMatching(message) },
            });
        };
        await refused({ groups: [{ vms: ['db1', 'ghost'] }] }, 'PLAN_VM_NOT_PROTECTED', /ghost \(not protected\)/);
        await refused(
            { groups: [{ vms: ['db1'] }, { vms: ['app1', 'db1'] }] },
            'PLAN_VM_TWICE',
            /db1 is in group 1 and in group 2/,
        );
        await refused({ groups: [{ vms: ['db1', 'db1'] }] }, 'PLAN_VM_TWICE', /named twice in group 1/);
        const many = Array.from({ length: 101 }, (_, i) => `vm${i}`);
        await refused(
            { groups: [{ vms: many.slice(0, 50) }, { vms: many.slice(50) }] },
            'PLAN_TOO_MANY_VMS',
            /names 101 VMs/,
        );
        await refused({ groups: [] }, 'PLAN_NO_GROUPS', /groups must be a list of 1 to 20/);
        await refused({ groups: [{ vms: [] }] }, 'PLAN_EMPTY_GROUP', /group 1 has neither/);
        await refused(
            { groups: [{ vms: ['db1'], preActions: [{ name: 'x', kind: 'Script' }] }] },
            'PLAN_ACTION',
            /kind must be Manual or Webhook/,
        );
        await refused(
            { groups: [{ vms: ['db1'], postActions: [{ name: 'x', kind: 'Webhook', urlSetting: 'https://x' }] }] },
            'PLAN_ACTION',
            /urlSetting must name an app setting/,
        );
        await refused({ recoveryPoint: 'Oldest', groups: [{ vms: ['db1'] }] }, 'PLAN_RECOVERY_POINT', /Oldest/);
        await refused({ groups: [{ vms: [{ vmId: 'db1', cores: -1 }] }] }, 'PLAN_VM_SETTINGS', /cores must be/);
        await refused({ groups: [{ vms: ['db1'] }] }, 'PLAN_NAME', /not valid/, 'bad.');
        // A VM still in initial replication is not protected yet.
        const at = h.clock.now().toISOString();
        await createProtectedItem(h.scope, {
            ...(await getProtectedItem(h.scope, 'db1'))!,
            vmId: 'fresh',
            protectionState: 'InitialReplicationInProgress',
            protectionStateDescription: 'Waiting for initial replication to complete',
            createdAt: at,
            updatedAt: at,
        });
        await refused(
            { groups: [{ vms: ['fresh'] }] },
            'PLAN_VM_NOT_PROTECTED',
            /fresh \(InitialReplicationInProgress\)/,
        );
        expect((await get('bad')).status).toBe(404);
        // 100 protected VMs are the most a plan may hold: the limit itself is accepted (checked without tables).
    });

    it('a webhook post-action is signed, retried after a 5xx, and holds the plan until it answers 2xx', async () => {
        const calls: { headers: IncomingMessage['headers']; body: string }[] = [];
        const answers = [503, 204];
        const server: Server = createServer((req, res) => {
            let body = '';
            req.on('data', (c: Buffer) => (body += c.toString('utf8')));
            req.on('end', () => {
                calls.push({ headers: req.headers, body });
                res.statusCode = answers.shift() ?? 204;
                res.end();
            });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const { port } = server.address() as AddressInfo;
        process.env.PLAN_TEST_DNS_URL = `http://127.0.0.1:${port}/dns`;
        process.env.PLAN_TEST_DNS_SECRET = 'hook-secret';
        try {
            await put('shop', planBody({ webhook: true }));
            const started = await act('shop', 'testFailover');
            await untilWaiting();
            await act('shop', 'resume');
            const job = await runToEnd(started.jsonBody!.jobId);
            expect(job.state).toBe('Succeeded');
            expect(task(job, 'Group 3: post-action Switch DNS')).toMatchObject({
                state: 'Succeeded',
                detail: 'Answered HTTP 204.',
            });
            expect(Date.parse(task(job, 'Group 3: post-action Switch DNS').startTime!)).toBeGreaterThanOrEqual(
                Date.parse(task(job, 'Group 3: VM web2').endTime!),
            );
            expect(calls).toHaveLength(2);
            for (const call of calls) {
                expect(call.headers[WEBHOOK_SIGNATURE_HEADER]).toBe(webhookSignature('hook-secret', call.body));
                expect(call.headers[WEBHOOK_DELIVERY_HEADER]).toBe(`${started.jsonBody!.jobId}:g3:post:Switch DNS`);
                expect(JSON.parse(call.body)).toMatchObject({
                    recoveryPlan: 'shop',
                    operation: 'TestFailover',
                    group: 3,
                    side: 'post',
                    action: 'Switch DNS',
                });
            }
        } finally {
            delete process.env.PLAN_TEST_DNS_URL;
            delete process.env.PLAN_TEST_DNS_SECRET;
            await new Promise((resolve) => server.close(resolve));
        }
    });
});
