import type { InputBindingProvider } from '../host/invoke';

/** What serves durable client bindings: the embedded runtime or the real engine. */
export interface DurableClientSource {
    clientBinding(): Promise<unknown>;
}

/** The binding types of a durable client input (`df.input.durableClient()`, and the older name). */
export const DURABLE_CLIENT_BINDING_TYPES: readonly string[] = ['durableClient', 'orchestrationClient'];

/** The durable client bindings of an engine, for `invokeFunction`'s `bindings`. */
export function durableClientBindings(source: DurableClientSource): InputBindingProvider {
    return { types: DURABLE_CLIENT_BINDING_TYPES, value: () => source.clientBinding() };
}
