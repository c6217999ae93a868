import * as df from 'durable-functions';
import { FailbackPhase } from '../shared/contracts/messages';
import { scaledMs } from '../shared/durableTime';
import { ErrorCode } from '../shared/errors';
import { allowedOperationsLine } from '../shared/failover/allowedOperations';
import { AzureVmPowerState } from '../shared/failback/azureVm';
import {
    azureVmPower,
    CompareRoundResult,
    compareRound,
    FailbackDeps,
    failbackEvent,
    FailbackPlan,
    planFailback,
    releaseFailbackPhase,
    RoundToStart,
    sendFailbackLogReady,
    sendStartFailback,
    writeFailbackLog,
    WrittenLog,
} from '../shared/failback/failbackSteps';
import { DataSyncOption } from '../shared/failback/names';
import { azureVmControl, failbackGrantMinutes } from '../shared/failback/settings';
import { fitCustomStatus } from '../shared/lifecycle/customStatus';
import { lifecycleEvents } from '../shared/lifecycle/instances';
import { Failure, outcomeOf } from '../shared/retry';
import { PROTECTION_STATES, ProtectionState } from '../shared/state/protectedItems';
import { ports } from '../shared/ports';
import { EventWaiters } from './lifecycle/eventWaiters';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { sendProviderEventActivity } from './lifecycleActivities';
import { recordStep } from './testFailover';

/**
 * Failback of one failed-over VM to its on-premises host (instance `failback:{vmId}`, job "Planned failover from
 * Azure to on-premises", ASR's planned failover with direction RecoveryToPrimary). With `ForDownTime` the
 * difference goes down while the VM in Azure runs (the provider's manifests against the Azure disks, one MS-HRL log
 * per disk), then the VM in Azure is deallocated and the last difference follows; with `ForSynchronization` the
 * VM in Azure is deallocated first and every written block is downloaded. Then the VM starts on premises.
 * Any failure before that starts the VM in Azure again (if this failback had shut it down) and tells the provider
 * to keep its VM off: the item is back to "Failover committed" and the failback can be run again. Callable as a
 * sub-orchestration (recovery plans) with the same input. docs/failover.md.
 */
export const FAILBACK = 'failback';

export const FAILBACK_TASKS = {
    ForDownTime: [
        'Prerequisites check for failback',
        'Synchronizing data while the virtual machine in Azure runs',
        'Shutting down the virtual machine in Azure',
        'Synchronizing the last changes',
        'Starting the virtual machine on premises',
    ],
    ForSynchronization: [
        'Prerequisites check for failback',
        'Shutting down the virtual machine in Azure',
        'Downloading the disks of the virtual machine in Azure',
        'Starting the virtual machine on premises',
    ],
} as const satisfies Record<DataSyncOption, readonly string[]>;

export interface FailbackInput {
    vmId: string;
    siteId: string;
    jobId: string;
    failbackId: string;
    /** The failover whose VM in Azure is failed back (the item's currentDrillId). */
    drillId: string;
    dataSyncOption: DataSyncOption;
    /** The state to return to when the failback fails (FailoverCommitted). */
    previousState: ProtectionState;
    /** Longest silence of the provider (FAILBACK_PROVIDER_TIMEOUT_MINUTES), read when the failback was requested. */
    providerTimeoutMinutes: number;
}

/** Bytes the failback moved, for the job's event and the simulator's report. */
export interface FailbackTransfer {
    /** Manifests the provider uploaded. */
    manifestBytes: number;
    /** Difference logs the provider downloaded. */
    logBytes: number;
    /** Disk bytes those logs carry. */
    dataBytes: number;
    /** Bytes of the Azure disks the cloud read to compare. */
    azureBytesRead: number;
    rounds: number;
}

export interface FailbackResult {
    result: 'FailedBack' | 'Failed';
    jobId: string;
    failbackId: string;
    transfer: FailbackTransfer;
    error?: { code: string; message: string };
}

// ---- activities -------------------------------------------------------------------------------------------

function deps(): FailbackDeps {
    const d = ports();
    const state = d.state();
    return {
        state,
        control: azureVmControl(state.conn),
        publish: (e) => d.providerEvents().publish(e),
        grantMinutes: failbackGrantMinutes(),
    };
}

type Arg<F> = F extends (deps: FailbackDeps, input: infer I) => unknown ? I : never;

export const planFailbackActivity = df.app.activity('failbackPlan', {
    handler: (input: unknown) => outcomeOf(() => planFailback(deps(), input as Arg<typeof planFailback>)),
});
export const sendStartFailbackActivity = df.app.activity('failbackSendStart', {
    handler: (input: unknown) => outcomeOf(() => sendStartFailback(deps(), input as Arg<typeof sendStartFailback>)),
});
export const compareRoundActivity = df.app.activity('failbackCompareRound', {
    handler: (input: unknown) => outcomeOf(() => compareRound(deps(), input as Arg<typeof compareRound>)),
});
export const writeFailbackLogActivity = df.app.activity('failbackWriteLog', {
    handler: (input: unknown) => outcomeOf(() => writeFailbackLog(deps(), input as Arg<typeof writeFailbackLog>)),
});
export const sendFailbackLogReadyActivity = df.app.activity('failbackSendLogReady', {
    handler: (input: unknown) =>
        outcomeOf(() => sendFailbackLogReady(deps(), input as Arg<typeof sendFailbackLogReady>)),
});
export const azureVmPowerActivity = df.app.activity('failbackAzureVmPower', {
    handler: (input: unknown) => outcomeOf(() => azureVmPower(deps(), input as Arg<typeof azureVmPower>)),
});
export const releaseFailbackPhaseActivity = df.app.activity('failbackReleasePhase', {
    handler: (input: unknown) =>
        outcomeOf(() => releaseFailbackPhase(deps(), input as Arg<typeof releaseFailbackPhase>)),
});

// ---- orchestrator -----------------------------------------------------------------------------------------

interface ProviderFailbackEvent {
    type?: string;
    failbackId?: string;
    phase?: FailbackPhase;
    diskId?: string;
    round?: number;
    disks?: { diskId: string; rootDigest: string }[];
    code?: string;
    message?: string;
    disksUntouched?: boolean;
    startedAt?: string;
}

/** One name for every provider message of a failback (see lifecycleEvents.failbackMessage), and Cancel. */
const AWAITED = [lifecycleEvents.failbackMessage, lifecycleEvents.cancel] as const;

/** The provider's failback commands, by `type` (the payload of lifecycleEvents.failbackMessage). */
const MANIFEST_UPLOADED = 'FailbackManifestUploaded';
const LOG_APPLIED = 'FailbackLogApplied';
const COMPLETED = 'FailbackCompleted';
const PROVIDER_FAILED = 'FailbackFailed';

type PhaseOutcome = { ok: true } | { ok: false; failure: Failure; disksTouched: boolean };

export function* failbackOrchestrator(context: df.OrchestrationContext): Generator<df.Task, FailbackResult, unknown> {
    const input = context.df.getInput<FailbackInput>();
    const { vmId, siteId, jobId, failbackId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const full = input.dataSyncOption === 'ForSynchronization';
    const tasks = FAILBACK_TASKS[input.dataSyncOption];
    const timeoutMs = scaledMs(input.providerTimeoutMinutes * 60_000);
    // Every waiter yielded is read, each once: provider messages (or a Cancel) in one batch resolve several
    // waiters at once, and one read as the Task.any's winner alone would lose the others
    // (orchestrations/lifecycle/eventWaiters.ts).
    const waiters = new EventWaiters(context);
    const transfer: FailbackTransfer = { manifestBytes: 0, logBytes: 0, dataBytes: 0, azureBytesRead: 0, rounds: 0 };
    let stage = 'Prerequisites';
    const setStatus = (extra: Record<string, unknown> = {}): void =>
        context.df.setCustomStatus(fitCustomStatus({ stage, jobId, failbackId, transfer, ...extra }));
    // Set once the prerequisites pass; the failure path reads it before that too, so it cannot be const.
    let plan: FailbackPlan | undefined;
    /** Whether this failback deallocated the VM in Azure (then a failure starts it again). */
    let shutDownHere = false;
    /** Whether a log may have been applied on premises (the provider said so, or did not say). */
    let disksTouched = false;
    /** The step that failed inside a helper that returns only whether it worked. */
    let pendingFailure: { task: string; failure: Failure } | undefined;
    setStatus();

    const started = (task: string, detail?: string) =>
        recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskStarted', task, at: now(), ...(detail ? { detail } : {}) }],
        });
    const succeeded = (task: string, detail?: string) =>
        recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskSucceeded', task, at: now(), ...(detail ? { detail } : {}) }],
        });

    // 1. Prerequisites: the failover's VM exists in Azure and its disks match.
    const [prerequisites] = tasks;
    yield* started(prerequisites);
    const planned = yield* callWithRetrySchedule<FailbackPlan>(context, planFailbackActivity, {
        vmId,
        failbackId,
        drillId: input.drillId,
    });
    if (!planned.ok) return yield* fail(prerequisites, planned);
    // eslint-disable-next-line prefer-const -- the closures above read it before this point
    plan = planned.value;
    yield* succeeded(
        prerequisites,
        `VM ${plan.vm.vmName} in Azure is ${plan.powerState}; ${plan.disks.length} disk(s)`,
    );

    if (full) {
        const [, shutdown, download, startOnPremises] = FAILBACK_TASKS.ForSynchronization;
        if (!(yield* shutDown(shutdown))) return yield* failed();
        stage = 'Downloading';
        setStatus();
        yield* started(download);
        const phase = yield* logPhase('Final', download, undefined);
        if (!phase.ok) return yield* fail(download, phase.failure);
        yield* succeeded(download, transferLine());
        return yield* startOnPrem(startOnPremises);
    }

    const [, synchronize, shutdown, last, startOnPremises] = FAILBACK_TASKS.ForDownTime;
    stage = 'Synchronizing';
    setStatus();
    yield* started(synchronize, 'The provider describes its disks; the differing blocks go down as one log per disk');
    const first = yield* comparePhase('Synchronize', synchronize);
    if (!first.ok) return yield* fail(synchronize, first.failure);
    yield* succeeded(synchronize, transferLine());
    if (!(yield* shutDown(shutdown))) return yield* failed();
    stage = 'SynchronizingLastChanges';
    setStatus();
    yield* started(last);
    const second = yield* comparePhase('Final', last);
    if (!second.ok) return yield* fail(last, second.failure);
    yield* succeeded(last, transferLine());
    return yield* startOnPrem(startOnPremises);

    // ---- steps ----

    function transferLine(): string {
        return (
            `${transfer.logBytes} bytes of difference logs (${transfer.dataBytes} of disk data) and ` +
            `${transfer.manifestBytes} bytes of manifests so far, in ${transfer.rounds} round(s)`
        );
    }

    function* shutDown(task: string): Generator<df.Task, boolean, unknown> {
        stage = 'ShuttingDownAzureVm';
        setStatus();
        yield* started(task);
        shutDownHere = true;
        const power = yield* callWithRetrySchedule<AzureVmPowerState>(context, azureVmPowerActivity, {
            vm: plan!.vm,
            action: 'deallocate',
        });
        if (!power.ok) {
            pendingFailure = { task, failure: power };
            return false;
        }
        yield* succeeded(task, `VM ${plan!.vm.vmName} in Azure is ${power.value}`);
        return true;
    }

    /** Waits for the next provider message of this failback (or Cancel, or the timeout as a failure). */
    function* nextEvent(
        what: string,
    ): Generator<df.Task, { name: string; event: ProviderFailbackEvent } | { failure: Failure }, unknown> {
        for (;;) {
            const received = yield* waiters.next(AWAITED, timeoutMs);
            if (received === undefined) {
                return {
                    failure: failure(
                        'TIMEOUT',
                        `No message from the provider for ${input.providerTimeoutMinutes} minutes while waiting for ${what} ` +
                            '(FAILBACK_PROVIDER_TIMEOUT_MINUTES): the provider is gone or does not know failback.',
                    ),
                };
            }
            if (received.name === lifecycleEvents.cancel) {
                return { failure: failure('CONFLICT', 'The failback was cancelled by the operator.') };
            }
            const event = (received.payload ?? {}) as ProviderFailbackEvent;
            // A message of an earlier failback of this VM must not move this one.
            if (event.failbackId !== failbackId) continue;
            const name = event.type ?? '';
            if (name === PROVIDER_FAILED) {
                if (event.disksUntouched === false) disksTouched = true;
                const code = (event.code ?? 'FAILBACK_APPLY_FAILED') as ErrorCode;
                return {
                    failure: failure(
                        code,
                        `The provider gave the failback up (${event.phase ?? '?'}): ${event.message ?? ''}`.trim(),
                    ),
                };
            }
            return { name, event };
        }
    }

    /** The comparison rounds of every disk, then the logs. */
    function* comparePhase(phase: FailbackPhase, task: string): Generator<df.Task, PhaseOutcome, unknown> {
        const roots: Record<string, string> = {};
        const outstanding = new Map<string, RoundToStart>();
        const rounds: Record<string, number> = {};
        const firstRounds: RoundToStart[] = plan!.disks.map((d) => ({ ...d, round: 1, level: 0 }));
        for (const r of firstRounds) outstanding.set(r.diskId, r);
        const sent = yield* callWithRetrySchedule<null>(context, sendStartFailbackActivity, {
            vmId,
            siteId,
            failbackId,
            phase,
            plan: { seed: plan!.seed, geometry: plan!.geometry },
            disks: firstRounds,
        });
        if (!sent.ok) return { ok: false, failure: sent, disksTouched };
        while (outstanding.size > 0) {
            const next = yield* nextEvent(`the manifests of ${[...outstanding.keys()].join(', ')} (${phase})`);
            if ('failure' in next) return { ok: false, failure: next.failure, disksTouched };
            if (next.name !== MANIFEST_UPLOADED || next.event.phase !== phase) continue;
            const round = outstanding.get(next.event.diskId ?? '');
            if (!round || round.round !== next.event.round) continue;
            const compared = yield* callWithRetrySchedule<CompareRoundResult>(context, compareRoundActivity, {
                vmId,
                failbackId,
                phase,
                plan: { seed: plan!.seed, geometry: plan!.geometry, vm: plan!.vm },
                disk: round,
            });
            if (!compared.ok) return { ok: false, failure: compared, disksTouched };
            transfer.manifestBytes += compared.value.manifestBytes;
            transfer.azureBytesRead += compared.value.azureBytesRead;
            transfer.rounds++;
            rounds[round.diskId] = round.round;
            if (compared.value.rootDigest) roots[round.diskId] = compared.value.rootDigest;
            setStatus({ phase, rounds });
            const following = compared.value.next;
            if (!following) {
                outstanding.delete(round.diskId);
                continue;
            }
            outstanding.set(round.diskId, following);
            const asked = yield* callWithRetrySchedule<null>(context, sendStartFailbackActivity, {
                vmId,
                siteId,
                failbackId,
                phase,
                plan: { seed: plan!.seed, geometry: plan!.geometry },
                disks: [following],
            });
            if (!asked.ok) return { ok: false, failure: asked, disksTouched };
        }
        const applied = yield* logPhase(phase, task, rounds);
        if (!applied.ok || phase !== 'Final') return applied;
        return verifyRoots(roots, applied.roots);
    }

    /** Writes one log per disk (the rounds' differences, or every written block), hands them over, waits. */
    function* logPhase(
        phase: FailbackPhase,
        task: string,
        rounds: Record<string, number> | undefined,
    ): Generator<df.Task, PhaseOutcome & { roots?: Record<string, string> }, unknown> {
        const logs: WrittenLog[] = [];
        for (const disk of plan!.disks) {
            const written = yield* callWithRetrySchedule<WrittenLog>(context, writeFailbackLogActivity, {
                vmId,
                failbackId,
                phase,
                plan: { geometry: plan!.geometry, vm: plan!.vm, seed: plan!.seed },
                diskId: disk.diskId,
                sizeBytes: disk.sizeBytes,
                rounds: rounds?.[disk.diskId] ?? 0,
                full: rounds === undefined,
            });
            if (!written.ok) return { ok: false, failure: written, disksTouched };
            logs.push(written.value);
            transfer.logBytes += written.value.bytes;
            transfer.dataBytes += written.value.dataBytes;
        }
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskDetail', task, detail: `Logs ready for the provider: ${transferLine()}` }],
        });
        const ready = yield* callWithRetrySchedule<null>(context, sendFailbackLogReadyActivity, {
            vmId,
            siteId,
            failbackId,
            phase,
            plan: { seed: plan!.seed, geometry: plan!.geometry },
            logs,
        });
        if (!ready.ok) return { ok: false, failure: ready, disksTouched };
        // From here the provider may be writing its disks: a failure leaves them to be levelled by a new failback.
        disksTouched = true;
        for (;;) {
            const next = yield* nextEvent(`FailbackLogApplied (${phase})`);
            if ('failure' in next) return { ok: false, failure: next.failure, disksTouched };
            if (next.name !== LOG_APPLIED || next.event.phase !== phase) continue;
            const roots = Object.fromEntries((next.event.disks ?? []).map((d) => [d.diskId, d.rootDigest]));
            setStatus({ phase, applied: true });
            if (rounds === undefined) {
                // A full download has no comparison: the log writer took each Azure disk's root digest.
                const azure = Object.fromEntries(logs.map((l) => [l.diskId, l.rootDigest ?? '']));
                return verifyRoots(azure, roots);
            }
            return { ok: true, roots };
        }
    }

    function verifyRoots(azure: Record<string, string>, onPrem: Record<string, string> | undefined): PhaseOutcome {
        const wrong = plan!.disks.filter(
            (d) => azure[d.diskId] === undefined || onPrem?.[d.diskId] !== azure[d.diskId],
        );
        if (wrong.length === 0) return { ok: true };
        return {
            ok: false,
            disksTouched,
            failure: failure(
                'FAILBACK_VERIFY_FAILED',
                `After the last difference, disk(s) ${wrong.map((d) => d.diskId).join(', ')} on premises do not match ` +
                    `the VM in Azure (root digest ${wrong.map((d) => `${onPrem?.[d.diskId] ?? 'missing'} ≠ ${azure[d.diskId] ?? '?'}`).join(', ')}).`,
            ),
        };
    }

    function* startOnPrem(task: string): Generator<df.Task, FailbackResult, unknown> {
        stage = 'StartingOnPremises';
        setStatus();
        yield* started(task);
        const told = yield* callWithRetrySchedule<null>(
            context,
            sendProviderEventActivity,
            failbackEvent('CompleteFailback', { vmId, siteId, failbackId }),
        );
        if (!told.ok) return yield* fail(task, told);
        for (;;) {
            const next = yield* nextEvent('FailbackCompleted');
            if ('failure' in next) return yield* fail(task, next.failure);
            if (next.name !== COMPLETED) continue;
            yield* succeeded(task, `Started on premises at ${next.event.startedAt ?? now()}`);
            break;
        }
        yield* callWithRetrySchedule<number>(context, releaseFailbackPhaseActivity, {
            vm: plan!.vm,
            phase: full ? 'Final' : 'Synchronize',
            deleteBlobs: true,
        });
        stage = 'FailedBack';
        setStatus();
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'jobSucceeded', at: now() }],
            item: {
                protectionState: 'FailedBack',
                protectionStateDescription: PROTECTION_STATES.FailedBack,
                lastSuccessfulFailbackTime: now(),
            },
            event: {
                eventId: `${jobId}:failedback`,
                kind: 'FailedBack',
                severity: 'Info',
                message:
                    `VM failed back to premises (${input.dataSyncOption}): ${transferLine()}. The VM in Azure is ` +
                    'deallocated; re-protect to replicate to Azure again.',
            },
        });
        return { result: 'FailedBack', jobId, failbackId, transfer };
    }

    // ---- failure ----

    function failure(code: ErrorCode, message: string): Failure {
        return { ok: false, code, message, recoverable: false };
    }

    function* failed(): Generator<df.Task, FailbackResult, unknown> {
        const p = pendingFailure!;
        return yield* fail(p.task, p.failure);
    }

    /**
     * Undoes what can be undone: the VM in Azure runs again if this failback shut it down, the provider keeps its
     * VM off (CancelFailback, best effort), the item is back to its state before the failback.
     */
    function* fail(task: string, f: Failure): Generator<df.Task, FailbackResult, unknown> {
        stage = 'RollingBack';
        setStatus();
        let azureLine = 'The virtual machine in Azure was not shut down and keeps running.';
        if (shutDownHere && plan) {
            const restarted = yield* callWithRetrySchedule<AzureVmPowerState>(
                context,
                azureVmPowerActivity,
                { vm: plan.vm, action: 'start' },
                { giveUpAfterMs: 24 * 3600_000 },
            );
            azureLine = restarted.ok
                ? 'The virtual machine in Azure was started again.'
                : `Starting the virtual machine in Azure again failed (${restarted.code}: ${restarted.message}): start it by hand.`;
        }
        if (plan) {
            for (const phase of ['Synchronize', 'Final'] as const) {
                yield* callWithRetrySchedule<number>(context, releaseFailbackPhaseActivity, {
                    vm: plan.vm,
                    phase,
                    deleteBlobs: phase === 'Final',
                });
            }
        }
        yield* callWithRetrySchedule<null>(
            context,
            sendProviderEventActivity,
            failbackEvent('CancelFailback', { vmId, siteId, failbackId, reason: `${f.code}: ${f.message}` }),
            { giveUpAfterMs: 15 * 60_000 },
        );
        const diskLine = disksTouched
            ? 'The on-premises disks may be partly levelled: run the failback again to finish levelling them.'
            : 'The on-premises disks were not changed.';
        const error = { code: f.code, message: `${f.message} ${azureLine} ${diskLine}` };
        const back = { protectionState: input.previousState, testFailoverState: 'None' };
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: { ...f, message: error.message } }],
            item: {
                protectionState: input.previousState,
                protectionStateDescription: PROTECTION_STATES[input.previousState],
            },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'FailbackFailed',
                severity: 'Warning',
                message: `${task} failed: ${error.code}: ${error.message} ${allowedOperationsLine(back)}.`,
            },
        });
        stage = 'Failed';
        setStatus({ error });
        return { result: 'Failed', jobId, failbackId, transfer, error };
    }
}

df.app.orchestration(FAILBACK, failbackOrchestrator);
