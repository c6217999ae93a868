/**
 * The settings host.json may use, taken from the option classes of the host and the extensions that extension
 * bundle `[4.*, 5.0.0)` loads. Configuration binding in the host is case-insensitive, so a misspelt or
 * outdated name is silently ignored (4.x's `messageHandlerOptions` under a 5.x Service Bus extension): these
 * lists are what keeps host.json honest. Each names the source it was read from.
 */

export interface OptionSource {
    /** Package (or component) and version line. */
    component: string;
    /** The class and file the names were read from. */
    source: string;
    /** Property names as host.json spells them (camelCase of the C# property). */
    names: readonly string[];
    /** Sub-sections by name, for properties that are objects themselves. */
    sections?: Readonly<Record<string, OptionSource>>;
}

const AZURE_STORAGE_PROVIDER: OptionSource = {
    component: 'Microsoft.Azure.WebJobs.Extensions.DurableTask 2.13.7 (Azure Storage provider)',
    source: 'Azure/azure-functions-durable-extension src/WebJobs.Extensions.DurableTask/Options/AzureStorageOptions.cs',
    names: [
        // Read by the provider factories from the storageProvider dictionary (AzureStorageDurabilityProviderFactory.cs).
        'type',
        'connectionName',
        'connectionStringName',
        'controlQueueBatchSize',
        'partitionCount',
        'controlQueueBufferThreshold',
        'controlQueueVisibilityTimeout',
        'workItemQueueVisibilityTimeout',
        'trackingStoreConnectionName',
        'trackingStoreConnectionStringName',
        'trackingStoreNamePrefix',
        'fetchLargeMessagesAutomatically',
        'maxQueuePollingInterval',
        'useLegacyPartitionManagement',
        'useTablePartitionManagement',
        'allowReplayingTerminalInstances',
    ],
};

export const EXTENSION_OPTIONS: Readonly<Record<string, OptionSource>> = {
    durableTask: {
        component: 'Microsoft.Azure.WebJobs.Extensions.DurableTask 2.13.7',
        source: 'Azure/azure-functions-durable-extension src/WebJobs.Extensions.DurableTask/Options/DurableTaskOptions.cs',
        names: [
            'httpSettings',
            'hubName',
            'storageProvider',
            'tracing',
            'notifications',
            'maxConcurrentActivityFunctions',
            'maxConcurrentOrchestratorFunctions',
            'maxConcurrentEntityFunctions',
            'localRpcEndpointEnabled',
            'maxEntityOperationBatchSize',
            'extendedSessionsEnabled',
            'extendedSessionIdleTimeoutInSeconds',
            'maxOrchestrationActions',
            'overridableExistingInstanceStates',
            'entityMessageReorderWindowInMinutes',
            'useGracefulShutdown',
            'rollbackEntityOperationsOnExceptions',
            'throwStatusExceptionsOnRaiseEvent',
            'useAppLease',
            'storeInputsInOrchestrationHistory',
            'appLeaseOptions',
        ],
        sections: { storageProvider: AZURE_STORAGE_PROVIDER },
    },
    serviceBus: {
        component: 'Microsoft.Azure.WebJobs.Extensions.ServiceBus 5.x',
        source: 'Azure/azure-sdk-for-net sdk/servicebus/Microsoft.Azure.WebJobs.Extensions.ServiceBus/src/Config/ServiceBusOptions.cs',
        names: [
            'prefetchCount',
            'clientRetryOptions',
            'transportType',
            'webProxy',
            'autoCompleteMessages',
            'maxAutoLockRenewalDuration',
            'maxConcurrentCalls',
            'maxConcurrentSessions',
            'maxConcurrentCallsPerSession',
            'maxMessageBatchSize',
            'minMessageBatchSize',
            'maxBatchWaitTime',
            'sessionIdleTimeout',
            'enableCrossEntityTransactions',
        ],
    },
    queues: {
        component: 'Microsoft.Azure.WebJobs.Extensions.Storage.Queues 5.x',
        source: 'Azure/azure-sdk-for-net sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueuesOptions.cs',
        names: [
            'batchSize',
            'newBatchThreshold',
            'maxPollingInterval',
            'maxDequeueCount',
            'visibilityTimeout',
            'messageEncoding',
        ],
    },
};

/** Top-level host.json keys the Functions host 4.x reads (the host.json reference of Azure Functions 2.x+). */
export const HOST_OPTIONS: OptionSource = {
    component: 'Azure Functions host 4.x',
    source: 'learn.microsoft.com/azure/azure-functions/functions-host-json (host.json reference for 2.x and later)',
    names: [
        'version',
        'aggregator',
        'concurrency',
        'console',
        'customHandler',
        'extensionBundle',
        'extensions',
        'functions',
        'functionTimeout',
        'healthMonitor',
        'logging',
        'managedDependency',
        'retry',
        'singleton',
        'telemetryMode',
        'watchDirectories',
        'watchFiles',
    ],
};

/** Extension ids (keys of `extensions`) with a list above; host.json may use no other. */
export const KNOWN_EXTENSIONS = Object.keys(EXTENSION_OPTIONS);

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** host.json keys that the loaded host and extensions do not define, with where they are. */
export function unknownHostSettings(hostJson: unknown): string[] {
    const problems: string[] = [];
    if (!isRecord(hostJson)) return ['host.json is not a JSON object'];
    const check = (section: Record<string, unknown>, options: OptionSource, path: string) => {
        for (const [key, value] of Object.entries(section)) {
            if (!options.names.includes(key)) {
                problems.push(`${path}${key} is not a setting of ${options.component} (${options.source})`);
                continue;
            }
            const nested = options.sections?.[key];
            if (nested && isRecord(value)) check(value, nested, `${path}${key}.`);
        }
    };
    check(hostJson, HOST_OPTIONS, '');
    const extensions = hostJson.extensions;
    if (isRecord(extensions)) {
        for (const [id, section] of Object.entries(extensions)) {
            const options = EXTENSION_OPTIONS[id];
            if (!options) {
                problems.push(
                    `extensions.${id} has no option list here: add the extension's options with their source`,
                );
                continue;
            }
            if (isRecord(section)) check(section, options, `extensions.${id}.`);
        }
    }
    return problems;
}
