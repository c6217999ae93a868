/**
 * The local platform: a Functions host for Node apps on the v4 programming model, an embedded Durable
 * Functions runtime (and the bridge to the real engine), a local AMQP Service Bus broker and Azurite.
 * Apps import this entry only; README.md says how to use it.
 */
export { startAzurite, azuriteNodeArgs, azuriteConnectionString, AZURITE_ACCOUNT, AZURITE_KEY } from './azurite';
export type { AzuriteEndpoints, AzuriteExit, RunningAzurite, StartAzuriteOptions } from './azurite';
export { AZURITE_LOOKUPS, MAX_SAVE_DELAY_MS, SAVE_SHARE_INVERSE } from './azuriteLookups';
export { LocalPlatformError, ensureErrorType, type LocalPlatformErrorCode } from './errors';
export { connectionFromString, deadline, STORAGE_CALL_TIMEOUT_MS, type StorageConnection } from './storage';

// The host
export { startLocalHost, type DurableStateLocation, type LocalHost, type LocalHostOptions } from './host/localHost';
export type { HostedTrigger, HostPlugin, HostPluginPrepare, HostPluginStart, HostPluginTrigger } from './host/plugins';
export type { FunctionSummary } from './host/functionList';
export { appModules, expandBraces } from './host/appModules';
export {
    applyDefaults,
    applySettings,
    DEFAULT_TASK_HUB,
    localSettingsValues,
    resolveSettingReferences,
    resolveSettings,
    routePrefixOf,
} from './host/appSettings';
export {
    BLOB_POISON_QUEUE,
    parseBlobPath,
    type BlobScanReport,
    type LocalEventSubscription,
} from './host/blobTriggers';
export { expandDevelopmentStorage, localQueueClient } from './host/hostStorage';
export { HttpFrontDoor, httpRoutes } from './host/httpFrontDoor';
export {
    invokeFunction,
    type FunctionInvoker,
    type InputBindingProvider,
    type InvokeFunctionOptions,
    type InvokeFunctionResult,
} from './host/invoke';
export { countInvocation, invocationCounts, type InvocationCount } from './host/invocationCounter';
export { parseNcrontab, type CronSchedule } from './host/ncrontab';
export {
    functionRegistry,
    installFunctionsCore,
    type FunctionRegistry,
    type RegisteredFunction,
} from './host/registry';
export { compareRoutePrecedence, parseRouteTemplate, type RouteTemplate } from './host/routeTemplate';
export { serviceBusHostSettings, timeSpanMs, type ServiceBusHostSettings } from './host/serviceBusSettings';
export { TIMER_STATUS_TABLE } from './host/timerTriggers';

// The durable runtime and the real engine
export { DurableRuntime, retryDelayMs, type DeliveryMode, type DurableRuntimeOptions } from './durable/runtime';
export type { InstanceStatus, RuntimeStatus } from './durable/runtime';
export { VirtualClock, realClock, isVirtualClock, type Clock } from './durable/clock';
export { DURABLE_CLIENT_BINDING_TYPES, durableClientBindings, type DurableClientSource } from './durable/clientBinding';
export { CUSTOM_STATUS_LIMIT_UTF16_BYTES, customStatusProblem } from './durable/customStatusLimit';
export { DtfxEngine } from './durable/dtfx';
export { findDtfxPrerequisites, requireDtfxPrerequisites, type DtfxPrerequisites } from './durable/dtfxHost';
export {
    DURABLE_ENGINE_SETTING,
    DURABLE_ENGINES,
    durableEngineOf,
    parseDurableEngine,
    type DurableEngineHandle,
    type DurableEngineName,
} from './durable/engineChoice';
export { eventTypeName, HistoryEventType, type HistoryEventRecord } from './durable/history';
export { MemoryInstanceStore, type InstanceStore } from './durable/store';
export {
    BlobInstanceStore,
    INSTANCE_BLOB_PREFIX,
    openPersistentState,
    stateContainerName,
    type PersistentDurableState,
} from './durable/blobStore';
export {
    DEFAULT_LEASE_SECONDS,
    OWNER_BLOB,
    TaskHubLease,
    type HubOwner,
    type IfHubOwned,
    type TaskHubLeaseOptions,
} from './durable/hubLease';
export { planRecovery, type RecoveryPlan } from './durable/recovery';

// The Service Bus broker
export { LocalServiceBus, STANDARD_MAX_MESSAGE_BYTES, type LocalServiceBusOptions } from './broker/localServiceBus';
export type { QueueOptions, StoredMessage, SubscriptionFilter } from './broker/localServiceBus';
