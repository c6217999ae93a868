import { isBusConfigured, serviceBusClientFromSetting } from './busClient';
import { ServiceBusEventPublisher } from './eventPublisher';

/** The app setting naming the provider bus (connection string, or `PROVIDER_BUS__fullyQualifiedNamespace`). */
export const PROVIDER_BUS_SETTING = 'PROVIDER_BUS';

/**
 * The production provider event publisher: `provider-events` on the namespace the PROVIDER_BUS setting names
 * (a connection string, or the namespace with a managed identity), or undefined when neither form is set.
 * Constructing it opens no connection; the first publish does.
 */
export function providerEventsFromSetting(
    env: NodeJS.ProcessEnv = process.env,
    name: string = PROVIDER_BUS_SETTING,
): ServiceBusEventPublisher | undefined {
    if (!isBusConfigured(name, env)) return undefined;
    return new ServiceBusEventPublisher(serviceBusClientFromSetting(name, env));
}
