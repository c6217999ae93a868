import Module from 'node:module';

/** A binding as the worker sees it: `type`, `direction` and the binding's own options. */
export interface CoreBinding {
    type: string;
    /** 'in', 'out' or 'inout'. */
    direction: string;
    [option: string]: unknown;
}

export interface CoreFunctionMetadata {
    name: string;
    bindings: Record<string, CoreBinding>;
    retryOptions?: unknown;
}

/** One function the app registered, with the handler the worker would call. */
export interface RegisteredFunction {
    name: string;
    metadata: CoreFunctionMetadata;
    triggerName: string;
    trigger: CoreBinding;
    handler: (...args: unknown[]) => unknown;
}

/**
 * Collects the app's registrations by standing in for `@azure/functions-core`, the module the Functions
 * worker provides. `@azure/functions` calls `setProgrammingModel` once and `registerFunction` per function.
 */
export class FunctionRegistry {
    readonly functions = new Map<string, RegisteredFunction>();
    programmingModel: unknown;

    /** The object to serve as the `@azure/functions-core` module. */
    coreModule(): Record<string, unknown> {
        return {
            setProgrammingModel: (model: unknown) => {
                this.programmingModel = model;
            },
            registerFunction: (metadata: CoreFunctionMetadata, handler: (...args: unknown[]) => unknown) => {
                const triggerEntry = Object.entries(metadata.bindings).find(([, b]) => /trigger$/i.test(b.type));
                if (!triggerEntry) throw new Error(`Function "${metadata.name}" has no trigger binding`);
                if (this.functions.has(metadata.name)) {
                    throw new Error(`Function "${metadata.name}" is registered twice`);
                }
                this.functions.set(metadata.name, {
                    name: metadata.name,
                    metadata,
                    triggerName: triggerEntry[0],
                    trigger: triggerEntry[1],
                    handler,
                });
                return { dispose: () => this.functions.delete(metadata.name) };
            },
            registerHook: () => ({ dispose: () => undefined }),
            log: () => undefined,
        };
    }

    get(name: string): RegisteredFunction {
        const fn = this.functions.get(name);
        if (!fn) {
            throw new Error(`No function "${name}" is registered (have: ${[...this.functions.keys()].join(', ')})`);
        }
        return fn;
    }

    /** Functions whose trigger binding has this type (`httpTrigger`, `blobTrigger`, `activityTrigger`, ...). */
    byTriggerType(type: string): RegisteredFunction[] {
        return [...this.functions.values()].filter((f) => f.trigger.type.toLowerCase() === type.toLowerCase());
    }
}

const GLOBAL_KEY = '__hvrFunctionRegistry';

/** The registry of this process (or of this jest test file). */
export function functionRegistry(): FunctionRegistry {
    const g = globalThis as Record<string, unknown>;
    let registry = g[GLOBAL_KEY] as FunctionRegistry | undefined;
    if (!registry) {
        registry = new FunctionRegistry();
        g[GLOBAL_KEY] = registry;
    }
    return registry;
}

let installed = false;

/**
 * Makes `require('@azure/functions-core')` resolve to the registry's stand-in in plain Node.
 * Must run before the app's first `app.*` call. (Under jest, test/support/functionsCore.ts does the same
 * with a virtual mock.)
 */
export function installFunctionsCore(registry: FunctionRegistry = functionRegistry()): FunctionRegistry {
    if (installed) return registry;
    const core = registry.coreModule();
    const mod = Module as unknown as {
        _load: (request: string, parent: unknown, isMain: boolean) => unknown;
    };
    const originalLoad = mod._load;
    mod._load = function (request: string, parent: unknown, isMain: boolean): unknown {
        if (request === '@azure/functions-core') return core;
        return originalLoad.call(this, request, parent, isMain);
    };
    installed = true;
    return registry;
}
