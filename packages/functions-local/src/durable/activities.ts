import type { FunctionInvoker } from '../host/invoke';
import type { RegisteredFunction } from '../host/registry';
import { durableClientBindings, type DurableClientSource } from './clientBinding';
import type { ActivityWork } from './historyRules';
import type { InstanceMessage } from './store';

/** The message and stack of anything thrown, as the host reports a failed function. */
export function describeError(err: unknown): { message: string; details: string } {
    if (err instanceof Error) return { message: err.message, details: err.stack ?? err.message };
    const message = typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err));
    return { message, details: message };
}

/** `hh:mm:ss` as the Functions host prints durations. */
function formatDuration(ms: number): string {
    const total = Math.floor(ms / 1000);
    const pad = (n: number) => n.toString().padStart(2, '0');
    return `${pad(Math.floor(total / 3600))}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
}

/**
 * Runs one scheduled activity as the worker would and turns its outcome into the message for the orchestration:
 * `TaskCompleted` with the JSON result, or `TaskFailed` with the host's wording (also for a missing function and
 * for one running past `timeoutMs`, which cannot be stopped: its late result is dropped).
 */
export async function runActivityWork(
    fn: RegisteredFunction | undefined,
    work: ActivityWork,
    options: { client: DurableClientSource; invoke: FunctionInvoker; timeoutMs: number; log: (line: string) => void },
): Promise<InstanceMessage> {
    const base = { executionId: work.executionId, taskScheduledId: work.taskScheduledId };
    if (!fn || fn.trigger.type !== 'activityTrigger') {
        return {
            kind: 'TaskFailed',
            ...base,
            reason: `The function '${work.name}' doesn't exist, is disabled, or is not an activity function`,
            details: '',
        };
    }
    let timer: NodeJS.Timeout | undefined;
    try {
        const input = work.input === undefined ? undefined : JSON.parse(work.input);
        const invocation = options.invoke(fn, input, {
            // Activities may declare a durable client (start or stop other instances), as on the real host.
            bindings: [durableClientBindings(options.client)],
            triggerMetadata: { instanceId: work.instanceId },
            log: (level, line) =>
                options.log(`[${work.name} ${work.instanceId}#${work.taskScheduledId}] ${level}: ${line}`),
        });
        const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(
                () =>
                    reject(
                        new Error(
                            `Timeout value of ${formatDuration(options.timeoutMs)} was exceeded by function: Functions.${work.name}`,
                        ),
                    ),
                options.timeoutMs,
            );
            timer.unref();
        });
        const { result } = await Promise.race([invocation, timeout]);
        return { kind: 'TaskCompleted', ...base, result: JSON.stringify(result ?? null) };
    } catch (err) {
        const { message, details } = describeError(err);
        return { kind: 'TaskFailed', ...base, reason: `Activity function '${work.name}' failed: ${message}`, details };
    } finally {
        if (timer) clearTimeout(timer);
    }
}
