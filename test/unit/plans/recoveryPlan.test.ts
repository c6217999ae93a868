import { parseRecoverySettings } from '../../../functions/apiFailover';
import { HvrError } from '../../../shared/errors';
import { planSteps, planTaskNames } from '../../../shared/plans/planSteps';
import {
    checkPlanVmsProtected,
    parseRecoveryPlan,
    PLAN_LIMITS,
    PLAN_RULES,
    recoveryPointChoiceFor,
} from '../../../shared/plans/recoveryPlan';
import { callPlanWebhook, webhookSignature, WebhookCall } from '../../../shared/plans/webhook';
import { applyJobChange, newJob } from '../../../shared/state/jobs';
import { ProtectionState } from '../../../shared/state/protectedItems';

const parse = (body: unknown, name = 'p1') => parseRecoveryPlan(name, body, parseRecoverySettings);

function ruleOf(f: () => unknown): string | undefined {
    try {
        f();
    } catch (err) {
        if (err instanceof HvrError) return `${err.code}/${String(err.details?.rule)}`;
        throw err;
    }
    return undefined;
}

describe('recovery plan rules (pure)', () => {
    it('accepts the limit of 100 VMs and refuses 101, naming the rule', () => {
        const vms = (n: number) => Array.from({ length: n }, (_, i) => `vm${i}`);
        expect(parse({ groups: [{ vms: vms(60) }, { vms: vms(100).slice(60) }] }).groups[1]!.vms).toHaveLength(40);
        expect(ruleOf(() => parse({ groups: [{ vms: vms(101) }] }))).toBe('VALIDATION_FAILED/PLAN_TOO_MANY_VMS');
        expect(PLAN_LIMITS.vms).toBe(100);
    });

    it('refuses a VM twice, in one group or two', () => {
        expect(ruleOf(() => parse({ groups: [{ vms: ['a', 'a'] }] }))).toBe('VALIDATION_FAILED/PLAN_VM_TWICE');
        expect(ruleOf(() => parse({ groups: [{ vms: ['a'] }, { vms: [{ vmId: 'a' }] }] }))).toBe(
            'VALIDATION_FAILED/PLAN_VM_TWICE',
        );
    });

    it('names every VM that is not protected, or not past initial replication', () => {
        const plan = parse({ groups: [{ vms: ['a', 'b', 'c'] }] });
        const items = new Map<string, { protectionState: ProtectionState }>([
            ['a', { protectionState: 'Protected' }],
            ['b', { protectionState: 'EnablingProtection' }],
        ]);
        expect(() => checkPlanVmsProtected(plan, items)).toThrow(/b \(EnablingProtection\), c \(not protected\)/);
        items.set('b', { protectionState: 'FailedOver' });
        items.set('c', { protectionState: 'Protected' });
        expect(() => checkPlanVmsProtected(plan, items)).not.toThrow();
    });

    it('keeps the defaults: Latest, actions for the failovers, webhook timeout 30 s', () => {
        const plan = parse({
            groups: [
                {
                    vms: ['a'],
                    preActions: [{ name: 'ok', kind: 'Manual' }],
                    postActions: [{ name: 'hook', kind: 'Webhook', urlSetting: 'U', secretSetting: 'S' }],
                },
            ],
        });
        expect(plan.recoveryPoint).toBe('Latest');
        expect(plan.groups[0]!.preActions[0]!.operations).toEqual([
            'TestFailover',
            'PlannedFailover',
            'UnplannedFailover',
        ]);
        expect(plan.groups[0]!.postActions[0]).toMatchObject({ timeoutSeconds: 30 });
        expect(recoveryPointChoiceFor('LatestProcessed')).toEqual({ type: 'Latest' });
        expect(recoveryPointChoiceFor('LatestApplicationConsistent')).toEqual({ type: 'LatestApplicationConsistent' });
    });

    it.each([
        [{ groups: [{ vms: ['a'] }], extra: 1 }, 'PLAN_SHAPE'],
        [
            {
                groups: [
                    {
                        vms: ['a'],
                        preActions: [
                            { name: 'x', kind: 'Manual' },
                            { name: 'x', kind: 'Manual' },
                        ],
                    },
                ],
            },
            'PLAN_ACTION',
        ],
        [
            {
                groups: [
                    {
                        vms: ['a'],
                        preActions: Array.from({ length: 11 }, (_, i) => ({ name: `m${i}`, kind: 'Manual' })),
                    },
                ],
            },
            'PLAN_TOO_MANY_ACTIONS',
        ],
        [
            {
                groups: [
                    {
                        vms: ['a'],
                        postActions: [
                            { name: 'h', kind: 'Webhook', urlSetting: 'U', secretSetting: 'S', timeoutSeconds: 601 },
                        ],
                    },
                ],
            },
            'PLAN_ACTION',
        ],
        [
            { groups: [{ vms: ['a'], preActions: [{ name: 'm', kind: 'Manual', operations: ['Reboot'] }] }] },
            'PLAN_ACTION',
        ],
        [{ groups: [{ vms: ['a/b'] }] }, 'PLAN_VM_ID'],
        [{ groups: [{ vms: [{ vmId: 'a', colour: 'red' }] }] }, 'PLAN_VM_SETTINGS'],
        [{ groups: Array.from({ length: 21 }, (_, i) => ({ vms: [`v${i}`] })) }, 'PLAN_NO_GROUPS'],
    ])('refuses %j with %s', (body, rule) => {
        expect(ruleOf(() => parse(body))).toBe(`VALIDATION_FAILED/${rule}`);
        expect(PLAN_RULES).toHaveProperty(rule);
    });

    it('lists the steps in run order, leaving out actions that do not run for the operation', () => {
        const plan = parse({
            groups: [
                { vms: ['db'], postActions: [{ name: 'check', kind: 'Manual' }] },
                {
                    vms: ['app1', 'app2'],
                    preActions: [{ name: 'all', kind: 'Manual', operations: ['Commit', 'TestFailover'] }],
                },
            ],
        });
        expect(planTaskNames(planSteps(plan, 'TestFailover'))).toEqual([
            'Group 1',
            'Group 1: VM db',
            'Group 1: post-action check',
            'Group 2',
            'Group 2: pre-action all',
            'Group 2: VM app1',
            'Group 2: VM app2',
        ]);
        expect(planTaskNames(planSteps(plan, 'TestFailoverCleanup'))).toEqual([
            'Group 1',
            'Group 1: VM db',
            'Group 2',
            'Group 2: VM app1',
            'Group 2: VM app2',
        ]);
        expect(planSteps(plan, 'Commit')[1]!.pre.map((s) => s.key)).toEqual(['g2:pre:all']);
    });
});

describe('a job whose task fails while its other tasks run (a plan group)', () => {
    it('stays InProgress with the error until jobFailed ends it; later changes then do nothing', () => {
        let job = newJob('j', 'TestFailover', '', ['a', 'b'], '2025-01-01T00:00:00Z');
        job = applyJobChange(job, { type: 'taskStarted', task: 'a', at: '2025-01-01T00:00:01Z' });
        job = applyJobChange(job, { type: 'taskStarted', task: 'b', at: '2025-01-01T00:00:01Z' });
        job = applyJobChange(job, {
            type: 'taskFailed',
            task: 'a',
            at: '2025-01-01T00:00:02Z',
            jobContinues: true,
            error: { code: 'FORBIDDEN', message: 'no', recoverable: false },
        });
        expect(job.state).toBe('InProgress');
        expect(job.errors).toEqual([expect.objectContaining({ task: 'a', code: 'FORBIDDEN' })]);
        job = applyJobChange(job, { type: 'taskSucceeded', task: 'b', at: '2025-01-01T00:00:03Z' });
        expect(job.tasks.map((t) => t.state)).toEqual(['Failed', 'Succeeded']);
        job = applyJobChange(job, { type: 'jobFailed', at: '2025-01-01T00:00:04Z' });
        expect(job).toMatchObject({ state: 'Failed', endTime: '2025-01-01T00:00:04Z' });
        expect(applyJobChange(job, { type: 'jobSucceeded', at: '2025-01-01T00:00:05Z' })).toBe(job);
    });
});

describe('the webhook action', () => {
    const call: WebhookCall = {
        action: {
            name: 'dns',
            kind: 'Webhook',
            urlSetting: 'T_URL',
            secretSetting: 'T_SECRET',
            timeoutSeconds: 1,
            operations: ['TestFailover'],
        },
        planName: 'p',
        jobId: 'j',
        operation: 'TestFailover',
        group: 1,
        side: 'post',
        deliveryId: 'j:g1:post:dns',
        at: '2025-01-01T00:00:00Z',
    };
    beforeEach(() => {
        process.env.T_URL = 'https://hooks.example/dns';
        process.env.T_SECRET = 's3';
    });
    afterEach(() => {
        delete process.env.T_URL;
        delete process.env.T_SECRET;
    });
    const answering = (status: number) =>
        jest.fn(async () => new Response(null, { status })) as unknown as typeof fetch;

    it('signs the body and succeeds on 2xx', async () => {
        const fetchFn = answering(200);
        expect(await callPlanWebhook(call, fetchFn)).toEqual({ ok: true, value: { status: 200 } });
        const [url, init] = (fetchFn as unknown as jest.Mock).mock.calls[0] as [string, RequestInit];
        expect(url).toBe('https://hooks.example/dns');
        const headers = init.headers as Record<string, string>;
        expect(headers['x-hvr-signature']).toBe(webhookSignature('s3', init.body as string));
        expect(init.signal).toBeInstanceOf(AbortSignal);
    });

    it('retries 5xx, stops on 4xx, times out, and names a missing setting', async () => {
        expect(await callPlanWebhook(call, answering(502))).toMatchObject({
            ok: false,
            code: 'TRANSIENT',
            recoverable: true,
        });
        expect(await callPlanWebhook(call, answering(403))).toMatchObject({
            ok: false,
            code: 'PREREQUISITE_FAILED',
            recoverable: false,
        });
        const hanging = ((_url: string, init: RequestInit) =>
            new Promise((_resolve, reject) =>
                init.signal!.addEventListener('abort', () => reject(init.signal!.reason as Error)),
            )) as unknown as typeof fetch;
        expect(await callPlanWebhook(call, hanging)).toMatchObject({
            ok: false,
            code: 'TIMEOUT',
            recoverable: true,
            message: expect.stringContaining('within 1 s'),
        });
        delete process.env.T_SECRET;
        expect(await callPlanWebhook(call, answering(200))).toMatchObject({
            ok: false,
            code: 'PREREQUISITE_FAILED',
            message: expect.stringContaining('T_SECRET'),
        });
    });
});
