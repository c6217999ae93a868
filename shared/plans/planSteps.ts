import { actionsFor, PlanAction, PlanOperation, PlanVm, RecoveryPlanDefinition } from './recoveryPlan';

/**
 * The steps an operation on a plan takes, and the job task each one shows as (pure). Group n's pre-actions run
 * one after another, then its VMs in parallel, then its post-actions; group n+1 starts when group n has ended.
 * Each step has a key that stays the same across jobs, so a retried operation skips the steps an earlier job
 * of the same run finished.
 */

export interface ActionStep {
    key: string;
    task: string;
    action: PlanAction;
}

export interface VmStep {
    key: string;
    task: string;
    vm: PlanVm;
}

export interface GroupSteps {
    /** 1-based, as the portal numbers groups. */
    group: number;
    task: string;
    pre: ActionStep[];
    vms: VmStep[];
    post: ActionStep[];
}

export function groupTask(group: number): string {
    return `Group ${group}`;
}

export function vmTask(group: number, vmId: string): string {
    return `Group ${group}: VM ${vmId}`;
}

export function actionTask(group: number, side: 'pre' | 'post', name: string): string {
    return `Group ${group}: ${side === 'pre' ? 'pre-action' : 'post-action'} ${name}`;
}

/** The steps of `operation` on `plan`, group by group. Actions that do not run for the operation are left out. */
export function planSteps(plan: Pick<RecoveryPlanDefinition, 'groups'>, operation: PlanOperation): GroupSteps[] {
    return plan.groups.map((g, i) => {
        const group = i + 1;
        const side = (which: 'pre' | 'post', actions: readonly PlanAction[]): ActionStep[] =>
            actionsFor(actions, operation).map((action) => ({
                key: `g${group}:${which}:${action.name}`,
                task: actionTask(group, which, action.name),
                action,
            }));
        return {
            group,
            task: groupTask(group),
            pre: side('pre', g.preActions),
            vms: g.vms.map((vm) => ({ key: `g${group}:vm:${vm.vmId}`, task: vmTask(group, vm.vmId), vm })),
            post: side('post', g.postActions),
        };
    });
}

/** The job's task list, in the order the steps run. */
export function planTaskNames(groups: readonly GroupSteps[]): string[] {
    return groups.flatMap((g) => [
        g.task,
        ...g.pre.map((s) => s.task),
        ...g.vms.map((s) => s.task),
        ...g.post.map((s) => s.task),
    ]);
}
