import { randomUUID } from 'node:crypto';
import { format } from 'node:util';
import { InvocationContext, type FunctionInput, type FunctionOutput, type LogLevel } from '@azure/functions';
import { LocalPlatformError } from '../errors';
import { countInvocation } from './invocationCounter';
import type { CoreBinding, RegisteredFunction } from './registry';

/**
 * Serves the extra input bindings of some types (for example the durable client): the invoker asks the first
 * provider that names the binding's type for its value.
 */
export interface InputBindingProvider {
    /** Binding types served, compared without case (`durableClient`, ...). */
    readonly types: readonly string[];
    value(binding: FunctionInput, fn: RegisteredFunction): Promise<unknown>;
}

/** How to call a registered function. */
export interface InvokeFunctionOptions {
    /** Serve extra input bindings by type (the durable client: `df.getClient(context)` drives that engine). */
    bindings?: readonly InputBindingProvider[];
    triggerMetadata?: Record<string, unknown>;
    invocationId?: string;
    /** Receives every `context.log/info/warn/error` line of the invocation. */
    log?: (level: LogLevel, message: string) => void;
    /** Values for other extra input bindings, by binding name. */
    extraInputs?: Record<string, unknown>;
}

/** How the durable runtime and the host call a function (`invokeFunction`, or a test's stand-in). */
export type FunctionInvoker = (
    fn: RegisteredFunction,
    triggerInput: unknown,
    options?: InvokeFunctionOptions,
) => Promise<InvokeFunctionResult>;

/** What a function returned and what it wrote to its extra output bindings (by binding name). */
export interface InvokeFunctionResult {
    result: unknown;
    extraOutputs: Map<string, unknown>;
}

/** A binding of the metadata turned back into the option object the app declared (name, type, its options). */
function declaredBinding(name: string, binding: CoreBinding): FunctionInput & FunctionOutput {
    const { direction: _direction, properties: _properties, ...options } = binding;
    return { ...options, name, type: binding.type };
}

/**
 * Calls a registered function as the Functions worker would: builds its InvocationContext from the binding
 * metadata (trigger, extra inputs and outputs), fills the extra inputs (from `bindings` or `extraInputs`),
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
        if (options.extraInputs && input.name in options.extraInputs) {
            context.extraInputs.set(input, options.extraInputs[input.name]);
            continue;
        }
        const type = input.type.toLowerCase();
        const provider = options.bindings?.find((p) => p.types.some((t) => t.toLowerCase() === type));
        if (!provider) {
            throw new LocalPlatformError(
                'CONFIG_MISSING',
                `Function "${fn.name}" has a ${input.type} input binding "${input.name}" that nothing serves: ` +
                    'pass a binding provider for it (for a durable client: the durable engine) to invokeFunction',
                { function: fn.name, binding: input.name, type: input.type },
            );
        }
        context.extraInputs.set(input, await provider.value(input, fn));
    }

    const counted = countInvocation(fn.name, fn.trigger.type);
    let result: unknown;
    try {
        result = await fn.handler(triggerInput, context);
    } catch (err) {
        counted(true);
        throw err;
    }
    counted();
    const outputs = new Map<string, unknown>();
    for (const output of extraOutputs) outputs.set(output.name, context.extraOutputs.get(output));
    return { result, extraOutputs: outputs };
}
