import { ServiceBusClient, ServiceBusClientOptions } from '@azure/service-bus';
import { DefaultAzureCredential, ManagedIdentityCredential, TokenCredential } from '@azure/identity';
import { optionalSetting } from '../config';
import { HvrError } from '../errors';

/** Bounds every bus operation (send, receive, settle, management) and keeps retries short. */
export const DEFAULT_BUS_TIMEOUT_MS = 30_000;

export function busClientOptions(timeoutInMs: number = DEFAULT_BUS_TIMEOUT_MS): ServiceBusClientOptions {
    return { retryOptions: { maxRetries: 3, retryDelayInMs: 500, maxRetryDelayInMs: 5_000, timeoutInMs } };
}

function credentialFor(name: string, env: NodeJS.ProcessEnv): TokenCredential {
    const clientId = optionalSetting(`${name}__clientId`, env);
    if (optionalSetting(`${name}__credential`, env) === 'managedidentity') {
        return clientId ? new ManagedIdentityCredential({ clientId }) : new ManagedIdentityCredential();
    }
    return new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
}

/**
 * A client for the Service Bus connection named by `name`, read the way the Functions Service Bus binding reads
 * it: `<name>` as a connection string (the official emulator, or a test peer with `UseDevelopmentEmulator=true`),
 * or `<name>__fullyQualifiedNamespace` with a managed identity (`<name>__credential`, `<name>__clientId`).
 */
export function serviceBusClientFromSetting(
    name: string,
    env: NodeJS.ProcessEnv = process.env,
    options: ServiceBusClientOptions = busClientOptions(),
): ServiceBusClient {
    const connectionString = optionalSetting(name, env);
    if (connectionString) return new ServiceBusClient(connectionString, options);
    const namespace = optionalSetting(`${name}__fullyQualifiedNamespace`, env);
    if (namespace) return new ServiceBusClient(namespace, credentialFor(name, env), options);
    throw new HvrError(
        'CONFIG_MISSING',
        `No Service Bus connection "${name}": set ${name} to a connection string, or ${name}__fullyQualifiedNamespace ` +
            `(with ${name}__credential=managedidentity and ${name}__clientId in Azure).`,
        { setting: name },
    );
}

/** Whether a bus connection is configured, so the local host knows to start the command receiver. */
export function isBusConfigured(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
    return (
        optionalSetting(name, env) !== undefined ||
        optionalSetting(`${name}__fullyQualifiedNamespace`, env) !== undefined
    );
}
