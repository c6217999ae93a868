import { randomUUID } from 'node:crypto';
import { format } from 'node:util';
import { InvocationContext, type FunctionInput, type FunctionOutput, type LogLevel } from '@azure/functions';
import { HvrError } from '../../../../shared/errors';
import type { CoreBinding, RegisteredFunction } from './registry';

/** What serves `durableClient` input bindings: the embedded runtime or the real engine. */
export interface DurableClientSource {
    clientBinding(): Promise<unknown>;
}

/** How to call a registered function. */
export interface InvokeFunctionOptions {
    /** Serves `durableClient` input bindings, so `df.getClient(context)` drives this engine. */
    runtime?: DurableClientSource;
    triggerMetadata?: Record<string, unknown>;
    invocationId?: string;
    /** Receives every `context.log/info/warn/error` line of the invocation. */
    log?: (level: LogLevel, message: string) => void;
    /** Values for other extra input bindings, by binding name. */
    extraInputs?: Record<string, unknown>;
}

/** What a function returned and what it wrote to its extra output bindings (by binding name). */
export interface InvokeFunctionResult {
    result: unknown;
    extraOutputs: Map<string, unknown>;
}

const DURABLE_CLIENT_TYPES = new Set(['durableclient', 'orchestrationclient']);

/** A binding of the metadata turned back into the option object the app declared (name, type, its options). */
function declaredBinding(name: string, binding: CoreBinding): FunctionInput & FunctionOutput {
    const { direction: _direction, properties: _properties, ...options } = binding;
    return { ...options, name, type: binding.type };
}

/**
 * Calls a registered function as the Functions worker would: builds its InvocationContext from the binding
 * metadata (trigger, extra inputs and outputs), fills the extra inputs (the durable client from `runtime`),
 * awaits the handler and collects the extra outputs it set.
 */
export async function invokeFunction(
    fn: RegisteredFunction,
    triggerInput: unknown,
    options: InvokeFunctionOptions = {},
): Promise<InvokeFunctionResult> {
    const entries = Object.entries(fn.metadata.bindings);
    const extraInputs = entries
        .filter(([name, b]) => name !== fn.triggerName && b.direction.toLowerCase() !== 'out')
        .map(([name, b]) => declaredBinding(name, b));
    const extraOutputs = entries
        .filter(([name, b]) => name !== '$return' && b.direction.toLowerCase() === 'out')
        .map(([name, b]) => declaredBinding(name, b));
    const returnBinding = fn.metadata.bindings.$return;

    const context = new InvocationContext({
        functionName: fn.name,
        invocationId: options.invocationId ?? randomUUID(),
        triggerMetadata: options.triggerMetadata,
        logHandler: (level, ...args) => options.log?.(level, format(...args)),
        options: {
            trigger: declaredBinding(fn.triggerName, fn.trigger),
            extraInputs,
            extraOutputs,
            ...(returnBinding ? { return: declaredBinding('$return', returnBinding) } : {}),
        },
    });

    for (const input of extraInputs) {
        if (DURABLE_CLIENT_TYPES.has(input.type.toLowerCase())) {
            if (!options.runtime) {
                throw new HvrError(
                    'CONFIG_MISSING',
                    `Function "${fn.name}" has a ${input.type} input binding: pass a durable engine to invokeFunction`,
                );
            }
            context.extraInputs.set(input, await options.runtime.clientBinding());
        } else if (options.extraInputs && input.name in options.extraInputs) {
            context.extraInputs.set(input, options.extraInputs[input.name]);
        }
    }

    const result = await fn.handler(triggerInput, context);
    const outputs = new Map<string, unknown>();
    for (const output of extraOutputs) outputs.set(output.name, context.extraOutputs.get(output));
    return { result, extraOutputs: outputs };
}
