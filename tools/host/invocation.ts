import { randomUUID } from 'node:crypto';
import { format } from 'node:util';
import { EffectiveFunctionOptions, FunctionInput, FunctionOutput, InvocationContext, LogLevel } from '@azure/functions';
import { RegisteredFunction } from './registry';

/** What the host needs from the durable runtime: the value a `durableClient` input binding receives. */
export interface DurableClientSource {
    clientBinding(): unknown;
}

export interface HostInvocationOptions {
    runtime?: DurableClientSource;
    triggerMetadata?: Record<string, unknown>;
    /** Receives each line the function logs through its InvocationContext. */
    log?: (level: LogLevel, functionName: string, message: string) => void;
}

/**
 * Calls a registered function as the Functions worker does: an InvocationContext whose `options` mirror
 * the function's bindings, extra inputs filled in (durable client), then `handler(trigger, context)`.
 */
export async function invokeRegistered(
    fn: RegisteredFunction,
    triggerInput: unknown,
    options: HostInvocationOptions = {},
): Promise<unknown> {
    const effective = effectiveOptions(fn);
    const context = new InvocationContext({
        invocationId: randomUUID(),
        functionName: fn.name,
        triggerMetadata: options.triggerMetadata,
        options: effective,
        logHandler: (level, ...args) => options.log?.(level, fn.name, format(...args)),
    });
    for (const input of effective.extraInputs) {
        if (input.type === 'durableClient' || input.type === 'orchestrationClient') {
            if (!options.runtime) {
                throw new Error(
                    `Function "${fn.name}" declares a durable client input, but the host has no durable runtime.`,
                );
            }
            context.extraInputs.set(input.name, options.runtime.clientBinding());
        }
    }
    return await fn.handler(triggerInput, context);
}

function effectiveOptions(fn: RegisteredFunction): EffectiveFunctionOptions {
    const extraInputs: FunctionInput[] = [];
    const extraOutputs: FunctionOutput[] = [];
    let returnBinding: FunctionOutput | undefined;
    for (const [name, binding] of Object.entries(fn.metadata.bindings)) {
        if (name === fn.triggerName) continue;
        const entry = { ...binding, name, type: binding.type };
        if (name === '$return') returnBinding = entry;
        else if (binding.direction === 'in') extraInputs.push(entry);
        else extraOutputs.push(entry);
    }
    return {
        trigger: { ...fn.trigger, name: fn.triggerName, type: fn.trigger.type },
        return: returnBinding,
        extraInputs,
        extraOutputs,
    };
}
