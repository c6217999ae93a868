import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PLAN_ACTIONS, RESUME_ACTION } from '../../../functions/apiRecoveryPlans';
import { WEBHOOK_GIVE_UP_MS } from '../../../orchestrations/recoveryPlan';
import { lifecycleEvents } from '../../../shared/lifecycle/instances';
import { actionTask, groupTask, vmTask } from '../../../shared/plans/planSteps';
import {
    DEFAULT_ACTION_OPERATIONS,
    PLAN_LIMITS,
    PLAN_RECOVERY_POINTS,
    PLAN_RULES,
} from '../../../shared/plans/recoveryPlan';
import { WEBHOOK_DELIVERY_HEADER, WEBHOOK_SIGNATURE_HEADER } from '../../../shared/plans/webhook';

const ROOT = join(__dirname, '..', '..', '..');
const apiDoc = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');
const failoverDoc = readFileSync(join(ROOT, 'docs/failover.md'), 'utf8');

describe('docs/api.md and docs/failover.md say what the recovery plan code does', () => {
    it('the rules table names exactly the rules of PLAN_RULES', () => {
        const start = apiDoc.indexOf('<!-- plan-rules:start -->');
        const end = apiDoc.indexOf('<!-- plan-rules:end -->');
        expect(start).toBeGreaterThan(0);
        const rows = [...apiDoc.slice(start, end).matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
        expect(rows.sort()).toEqual(Object.keys(PLAN_RULES).sort());
    });

    it.each([...Object.keys(PLAN_ACTIONS), RESUME_ACTION])('the route %s is documented', (action) => {
        expect(apiDoc).toContain(`POST /api/recoveryPlans/{name}/${action}\``);
    });

    it('the limits, defaults and recovery points are the code’s', () => {
        expect(apiDoc).toContain(`at most ${PLAN_LIMITS.vms} in the plan`);
        expect(apiDoc).toContain(`1–${PLAN_LIMITS.groups} groups`);
        expect(apiDoc).toContain(`up to ${PLAN_LIMITS.actionsPerSide} each`);
        const { min, max } = PLAN_LIMITS.webhookTimeoutSeconds;
        expect(apiDoc).toContain(`\`timeoutSeconds\` ${min}–${max}`);
        expect(apiDoc).toContain(`operations ${DEFAULT_ACTION_OPERATIONS.map((o) => `\`${o}\``).join(', ')}`);
        for (const point of PLAN_RECOVERY_POINTS) expect(apiDoc).toContain(`\`${point}\``);
    });

    it('the walk-through uses the task names the job shows', () => {
        for (const name of [
            groupTask(1),
            vmTask(1, 'db1'),
            actionTask(2, 'pre', 'Check the database'),
            actionTask(3, 'post', 'Switch DNS'),
            vmTask(2, 'app2'),
        ]) {
            expect(failoverDoc).toContain(name);
        }
    });

    it('the webhook contract and the resume event are the code’s', () => {
        expect(failoverDoc).toContain(`${WEBHOOK_SIGNATURE_HEADER}: sha256=`);
        expect(failoverDoc).toContain(`${WEBHOOK_DELIVERY_HEADER}: <jobId>:<step>`);
        expect(failoverDoc).toContain(`for ${WEBHOOK_GIVE_UP_MS / 60_000}\n  minutes`);
        expect(failoverDoc).toContain(`\`${lifecycleEvents.recoveryPlanResume}\``);
    });
});
