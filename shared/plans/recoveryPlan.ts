import { isContractId, ID_RULE } from '../contracts/ids';
import { HvrError } from '../errors';
import { RecoverySettings } from '../failover/drillSteps';
import { RecoveryPointChoice } from '../failover/recoveryPointChoice';
import { ProtectedItem, ProtectionState } from '../state/protectedItems';

/**
 * A recovery plan (ASR's replicationRecoveryPlans): protected VMs of one or more sites in ordered groups, with
 * actions before and after each group, and the recovery point every VM of the plan fails over to. An operation
 * on the plan runs the groups in order and the VMs of a group in parallel. This file is the plan's shape and
 * the rules a plan must keep (pure); the API applies them at creation.
 */

/** How large a plan may be. */
export const PLAN_LIMITS = {
    /** ASR's limit for one recovery plan. */
    vms: 100,
    groups: 20,
    /** Per group and side (pre or post). */
    actionsPerSide: 10,
    webhookTimeoutSeconds: { min: 1, max: 600, default: 30 },
    descriptionLength: 1024,
    instructionsLength: 1024,
} as const;

/**
 * The rule a refused plan broke, named in `error.rule` of the 400 answer (the one owner of these names;
 * docs/api.md lists them and a test checks the list).
 */
export const PLAN_RULES = {
    PLAN_SHAPE: 'the plan must be an object with groups (and optionally description, recoveryPoint)',
    PLAN_NAME: `a plan name is ${ID_RULE}`,
    PLAN_NO_GROUPS: `a plan has 1 to ${PLAN_LIMITS.groups} groups`,
    PLAN_EMPTY_GROUP: 'every group has at least one VM or one action',
    PLAN_TOO_MANY_VMS: `a plan holds at most ${PLAN_LIMITS.vms} VMs`,
    PLAN_VM_ID: `a VM id is ${ID_RULE}`,
    PLAN_VM_TWICE: 'a VM appears once in a plan (in one group, once)',
    PLAN_VM_NOT_PROTECTED: 'every VM of a plan is a protected item past initial replication',
    PLAN_VM_SETTINGS: 'a VM entry holds vmId and optionally the recovery settings of a failover request',
    PLAN_RECOVERY_POINT: 'recoveryPoint is Latest, LatestProcessed or LatestApplicationConsistent',
    PLAN_ACTION:
        'an action has a unique name and kind Manual (with instructions) or Webhook (urlSetting, secretSetting, timeoutSeconds)',
    PLAN_TOO_MANY_ACTIONS: `a group has at most ${PLAN_LIMITS.actionsPerSide} pre-actions and ${PLAN_LIMITS.actionsPerSide} post-actions`,
} as const;

export type PlanRule = keyof typeof PLAN_RULES;

/** VALIDATION_FAILED naming the rule (`details.rule`), so a client can tell refusals apart without the message. */
export function planRefused(rule: PlanRule, message: string, details: Record<string, unknown> = {}): HvrError {
    return new HvrError('VALIDATION_FAILED', `${message} (rule ${rule}: ${PLAN_RULES[rule]}).`, { rule, ...details });
}

/** The operations a plan runs, in ASR's names (the API's routes are their camelCase forms). */
export const PLAN_OPERATIONS = [
    'TestFailover',
    'TestFailoverCleanup',
    'PlannedFailover',
    'UnplannedFailover',
    'Commit',
    /** Reverse replication and failback: its per-VM orchestration is not built yet (see orchestrations/recoveryPlan). */
    'Failback',
] as const;
export type PlanOperation = (typeof PLAN_OPERATIONS)[number];

/** The operations an action runs for when it does not say: the ones that bring VMs up. */
export const DEFAULT_ACTION_OPERATIONS: readonly PlanOperation[] = [
    'TestFailover',
    'PlannedFailover',
    'UnplannedFailover',
];

/**
 * The plan's recovery point. `Latest` and `LatestProcessed` choose the same point here: the merge processes each
 * log as it arrives, so the newest recovery point is the newest processed one (ASR's `Latest` first processes
 * pending data; there is none pending in the cloud).
 */
export const PLAN_RECOVERY_POINTS = ['Latest', 'LatestProcessed', 'LatestApplicationConsistent'] as const;
export type PlanRecoveryPoint = (typeof PLAN_RECOVERY_POINTS)[number];

/** The per-VM failover's choice for the plan's recovery point. */
export function recoveryPointChoiceFor(point: PlanRecoveryPoint): RecoveryPointChoice {
    return point === 'LatestApplicationConsistent' ? { type: 'LatestApplicationConsistent' } : { type: 'Latest' };
}

export interface ManualAction {
    name: string;
    kind: 'Manual';
    /** What the operator does before resuming the plan. */
    instructions?: string;
    operations: PlanOperation[];
}

export interface WebhookAction {
    name: string;
    kind: 'Webhook';
    /** The app setting holding the URL (never the URL itself: it may carry a token). */
    urlSetting: string;
    /** The app setting holding the HMAC secret the request is signed with. */
    secretSetting: string;
    timeoutSeconds: number;
    operations: PlanOperation[];
}

export type PlanAction = ManualAction | WebhookAction;

export interface PlanVm {
    vmId: string;
    /** The recovered VM's settings (as a failover request's body), used by test failover and failover. */
    settings?: RecoverySettings;
}

export interface PlanGroup {
    vms: PlanVm[];
    preActions: PlanAction[];
    postActions: PlanAction[];
}

/** What an operator defines (the body of PUT /api/recoveryPlans/{name}), validated. */
export interface RecoveryPlanDefinition {
    name: string;
    description?: string;
    recoveryPoint: PlanRecoveryPoint;
    groups: PlanGroup[];
}

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const ACTION_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,63}$/;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(obj: Json, allowed: readonly string[], where: string, rule: PlanRule): void {
    const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
    if (unknown.length > 0)
        throw planRefused(rule, `${where} has unknown field ${unknown.map((k) => `"${k}"`).join(', ')}`);
}

function parseOperations(value: unknown, where: string): PlanOperation[] {
    if (value === undefined) return [...DEFAULT_ACTION_OPERATIONS];
    if (
        !Array.isArray(value) ||
        value.length === 0 ||
        !value.every((o) => (PLAN_OPERATIONS as readonly unknown[]).includes(o))
    ) {
        throw planRefused(
            'PLAN_ACTION',
            `${where}.operations must list some of ${PLAN_OPERATIONS.join(', ')}; got ${JSON.stringify(value)}`,
        );
    }
    return [...new Set(value as PlanOperation[])];
}

function parseAction(value: unknown, where: string): PlanAction {
    if (!isObject(value)) throw planRefused('PLAN_ACTION', `${where} must be an object; got ${JSON.stringify(value)}`);
    if (typeof value.name !== 'string' || !ACTION_NAME.test(value.name)) {
        throw planRefused(
            'PLAN_ACTION',
            `${where}.name must be 1-64 letters, digits, spaces or ._()- starting with a letter or digit; got ${JSON.stringify(value.name)}`,
        );
    }
    const operations = parseOperations(value.operations, where);
    if (value.kind === 'Manual') {
        onlyKeys(value, ['name', 'kind', 'instructions', 'operations'], where, 'PLAN_ACTION');
        if (
            value.instructions !== undefined &&
            (typeof value.instructions !== 'string' || value.instructions.length > PLAN_LIMITS.instructionsLength)
        ) {
            throw planRefused(
                'PLAN_ACTION',
                `${where}.instructions must be a string of at most ${PLAN_LIMITS.instructionsLength} characters`,
            );
        }
        return {
            name: value.name,
            kind: 'Manual',
            operations,
            ...(typeof value.instructions === 'string' ? { instructions: value.instructions } : {}),
        };
    }
    if (value.kind === 'Webhook') {
        onlyKeys(
            value,
            ['name', 'kind', 'urlSetting', 'secretSetting', 'timeoutSeconds', 'operations'],
            where,
            'PLAN_ACTION',
        );
        for (const field of ['urlSetting', 'secretSetting'] as const) {
            const v = value[field];
            if (typeof v !== 'string' || !SETTING_NAME.test(v)) {
                throw planRefused(
                    'PLAN_ACTION',
                    `${where}.${field} must name an app setting (letters, digits and _, not starting with a digit); got ${JSON.stringify(v)}`,
                );
            }
        }
        const { min, max } = PLAN_LIMITS.webhookTimeoutSeconds;
        const timeout = value.timeoutSeconds ?? PLAN_LIMITS.webhookTimeoutSeconds.default;
        if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < min || timeout > max) {
            throw planRefused(
                'PLAN_ACTION',
                `${where}.timeoutSeconds must be a whole number of seconds from ${min} to ${max}; got ${JSON.stringify(timeout)}`,
            );
        }
        return {
            name: value.name,
            kind: 'Webhook',
            urlSetting: value.urlSetting as string,
            secretSetting: value.secretSetting as string,
            timeoutSeconds: timeout,
            operations,
        };
    }
    throw planRefused('PLAN_ACTION', `${where}.kind must be Manual or Webhook; got ${JSON.stringify(value.kind)}`);
}

function parseActions(value: unknown, where: string): PlanAction[] {
    if (value === undefined) return [];
    if (!Array.isArray(value))
        throw planRefused('PLAN_ACTION', `${where} must be a list; got ${JSON.stringify(value)}`);
    if (value.length > PLAN_LIMITS.actionsPerSide) {
        throw planRefused('PLAN_TOO_MANY_ACTIONS', `${where} has ${value.length} actions`);
    }
    return value.map((a, i) => parseAction(a, `${where}[${i}]`));
}

/**
 * Parses and checks a plan's definition, everything but the VMs' protection (that needs the tables:
 * `checkPlanVmsProtected`). `parseSettings` is the failover API's own parser of recovery settings.
 */
export function parseRecoveryPlan(
    name: string,
    body: unknown,
    parseSettings: (body: Record<string, unknown>) => RecoverySettings,
): RecoveryPlanDefinition {
    if (!isContractId(name)) throw planRefused('PLAN_NAME', `plan name ${JSON.stringify(name)} is not valid`);
    const root = isObject(body) && isObject(body.properties) ? body.properties : body;
    if (!isObject(root)) throw planRefused('PLAN_SHAPE', `the body must be a JSON object; got ${JSON.stringify(root)}`);
    onlyKeys(root, ['description', 'recoveryPoint', 'groups'], 'the plan', 'PLAN_SHAPE');
    if (
        root.description !== undefined &&
        (typeof root.description !== 'string' || root.description.length > PLAN_LIMITS.descriptionLength)
    ) {
        throw planRefused(
            'PLAN_SHAPE',
            `description must be a string of at most ${PLAN_LIMITS.descriptionLength} characters`,
        );
    }
    const recoveryPoint = root.recoveryPoint ?? 'Latest';
    if (!(PLAN_RECOVERY_POINTS as readonly unknown[]).includes(recoveryPoint)) {
        throw planRefused('PLAN_RECOVERY_POINT', `recoveryPoint ${JSON.stringify(recoveryPoint)} is not one of them`);
    }
    if (!Array.isArray(root.groups) || root.groups.length === 0 || root.groups.length > PLAN_LIMITS.groups) {
        throw planRefused(
            'PLAN_NO_GROUPS',
            `groups must be a list of 1 to ${PLAN_LIMITS.groups} groups; got ${
                Array.isArray(root.groups) ? `${root.groups.length} groups` : JSON.stringify(root.groups)
            }`,
        );
    }
    const vmCount = root.groups.reduce<number>(
        (n, g) => n + (isObject(g) && Array.isArray(g.vms) ? g.vms.length : 0),
        0,
    );
    if (vmCount > PLAN_LIMITS.vms) {
        throw planRefused('PLAN_TOO_MANY_VMS', `the plan names ${vmCount} VMs`, { vmCount });
    }
    const groupOf = new Map<string, number>();
    const actionNames = new Set<string>();
    const groups = root.groups.map((g: unknown, gi: number): PlanGroup => {
        const where = `groups[${gi}]`;
        if (!isObject(g)) throw planRefused('PLAN_SHAPE', `${where} must be an object; got ${JSON.stringify(g)}`);
        onlyKeys(g, ['vms', 'preActions', 'postActions'], where, 'PLAN_SHAPE');
        if (g.vms !== undefined && !Array.isArray(g.vms)) {
            throw planRefused('PLAN_SHAPE', `${where}.vms must be a list; got ${JSON.stringify(g.vms)}`);
        }
        const vms = ((g.vms as unknown[] | undefined) ?? []).map((v: unknown, vi: number): PlanVm => {
            const entry = typeof v === 'string' ? { vmId: v } : v;
            const at = `${where}.vms[${vi}]`;
            if (!isObject(entry)) {
                throw planRefused('PLAN_VM_SETTINGS', `${at} must be a VM id or an object; got ${JSON.stringify(v)}`);
            }
            if (!isContractId(entry.vmId)) {
                throw planRefused('PLAN_VM_ID', `${at}.vmId ${JSON.stringify(entry.vmId)} is not a VM id`);
            }
            const vmId = entry.vmId as string;
            const earlier = groupOf.get(vmId);
            if (earlier !== undefined) {
                throw planRefused(
                    'PLAN_VM_TWICE',
                    earlier === gi
                        ? `VM ${vmId} is named twice in group ${gi + 1}`
                        : `VM ${vmId} is in group ${earlier + 1} and in group ${gi + 1}`,
                    { vmId },
                );
            }
            groupOf.set(vmId, gi);
            const { vmId: _vmId, ...rest } = entry;
            if (Object.keys(rest).length === 0) return { vmId };
            let settings: RecoverySettings;
            try {
                onlyKeys(rest, ['networkAdapters', 'vmSize', 'cores', 'memoryMiB', 'osType'], at, 'PLAN_VM_SETTINGS');
                settings = parseSettings(rest);
            } catch (err) {
                if (err instanceof HvrError && err.details?.rule !== undefined) throw err;
                throw planRefused('PLAN_VM_SETTINGS', `${at}: ${(err as Error).message.replace(/\.$/, '')}`, { vmId });
            }
            return { vmId, settings };
        });
        const preActions = parseActions(g.preActions, `${where}.preActions`);
        const postActions = parseActions(g.postActions, `${where}.postActions`);
        for (const a of [...preActions, ...postActions]) {
            if (actionNames.has(a.name)) {
                throw planRefused('PLAN_ACTION', `the action name "${a.name}" is used twice in the plan`);
            }
            actionNames.add(a.name);
        }
        if (vms.length === 0 && preActions.length === 0 && postActions.length === 0) {
            throw planRefused('PLAN_EMPTY_GROUP', `group ${gi + 1} has neither VMs nor actions`);
        }
        return { vms, preActions, postActions };
    });
    return {
        name,
        recoveryPoint: recoveryPoint as PlanRecoveryPoint,
        groups,
        ...(typeof root.description === 'string' ? { description: root.description } : {}),
    };
}

/** The protection states in which a VM cannot be in a plan: it has no replica to fail over (yet, or any more). */
const NOT_PLANNABLE: ReadonlySet<ProtectionState> = new Set<ProtectionState>([
    'EnablingProtection',
    'EnablingFailed',
    'InitialReplicationInProgress',
    'InitialReplicationFailed',
    'DisablingProtection',
    'DisablingFailed',
]);

/** Every VM of the plan is a protected item past initial replication; the refusal lists every one that is not. */
export function checkPlanVmsProtected(
    plan: RecoveryPlanDefinition,
    items: ReadonlyMap<string, Pick<ProtectedItem, 'protectionState'>>,
): void {
    const bad: string[] = [];
    for (const vm of planVms(plan)) {
        const item = items.get(vm.vmId);
        if (!item) bad.push(`${vm.vmId} (not protected)`);
        else if (NOT_PLANNABLE.has(item.protectionState)) bad.push(`${vm.vmId} (${item.protectionState})`);
    }
    if (bad.length > 0) {
        throw planRefused('PLAN_VM_NOT_PROTECTED', `the plan names ${bad.join(', ')}`, {
            vmIds: bad.map((b) => b.split(' ')[0]),
        });
    }
}

export function planVms(plan: Pick<RecoveryPlanDefinition, 'groups'>): PlanVm[] {
    return plan.groups.flatMap((g) => g.vms);
}

/** The actions of one side of a group that run for this operation. */
export function actionsFor(actions: readonly PlanAction[], operation: PlanOperation): PlanAction[] {
    return actions.filter((a) => a.operations.includes(operation));
}
