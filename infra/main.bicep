// The cloud side of Hyper-V disaster recovery to Azure, for `azd up`: a Flex Consumption Functions app (Node 22)
// running as one user-assigned identity, its storage (host and Durable Functions), the replica storage (uploaded
// logs, replica disks), the provider Service Bus, Event Grid delivering new logs to the merge's queue, and
// monitoring with alerts.
// Nothing here uses a key or a connection string: every connection is Entra ID with a managed identity.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource. It must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name (empty: rg-<environmentName>).')
param resourceGroupName string = ''

@description('Object id of the person (or pipeline) running azd; gets the app\'s data roles for local debugging. Empty: none.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@allowed(['Enabled', 'Disabled'])
@description('Public network access to both storage accounts (and to Service Bus when Premium). Disabled puts the app behind a VNet with private endpoints.')
param publicNetworkAccess string = 'Enabled'

@description('Public CIDR ranges allowed through the storage firewalls (provider sites, your workstation). Setting any denies all other public addresses.')
param allowedIpRanges array = []

@description('Integrate the app with a VNet and reach storage through private endpoints even while public access stays on.')
param vnetEnabled bool = false

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_RAGRS'])
@description('Redundancy of the replica storage account (replica disks, logs, state).')
param replicaStorageSku string = 'Standard_LRS'

@description('Add a second, infrastructure-level layer of encryption at rest to the replica storage. Only at creation.')
param replicaInfrastructureEncryption bool = true

@allowed(['Standard', 'Premium'])
param serviceBusSku string = 'Standard'

@description('Resource id of a Key Vault (RBAC, soft delete and purge protection on) holding a customer-managed key for storage. Empty: Microsoft-managed keys.')
param customerManagedKeyVaultId string = ''

@description('Name of the customer-managed key in that vault.')
param customerManagedKeyName string = ''

@description('On-premises sites: [{ siteId, principalId }]. Each gets a filtered provider-events subscription and the rights to use it.')
param providerSites array = []

@description('E-mail address for alerts (empty: the action group is created without receivers).')
param alertEmail string = ''

@minValue(60)
param rpoAlertThresholdSeconds int = 3600

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances, e.g. [{ name: \'blob\', instanceCount: 1 }]. Each is billed while idle; none by default.')
param alwaysReady array = []

@minValue(30)
param logRetentionDays int = 30

@description('Durable Functions task hub name (letters and digits, 3-45).')
@minLength(3)
@maxLength(45)
param durableTaskHubName string = 'hvr'

@minValue(1)
param mergeConcurrency int = 8

@minValue(1)
param mergeGapMinSeconds int = 120

@minValue(1000)
param storageCallTimeoutMs int = 60000

@minValue(1048576)
@description('Smallest ranged read of an uploaded log while merging, in bytes.')
param mergeReadBytes int = 8388608

@allowed(['Locked', 'Unlocked', 'None'])
@description('The blob immutability policy the app sets on the snapshots of every recovery point under its policy\'s minimum retention (the replicas container gets version-level immutability unless None). Locked: nobody, not even a subscription owner, can delete or shorten it before it expires. Unlocked: an identity with the immutability-policy data actions can still shorten or remove it (for trying it out).')
param recoveryPointImmutability string = 'Locked'

@minValue(1)
@maxValue(1500)
@description('How long one merge invocation works on a log before it records its progress and continues in a fresh invocation (below the 30-minute function timeout).')
param mergeTimeBudgetSeconds int = 300

@minValue(5)
@maxValue(1440)
@description('Lifetime of the write-only SAS a provider gets to upload a log.')
param uploadGrantTtlMinutes int = 30

@minValue(1)
@description('Resyncs that may run at once per site (each reads whole disks on the host).')
param resyncMaxPerSite int = 2

@allowed(['arm', 'dryrun'])
@description('Failover: arm creates disks, NICs and VMs in Azure; dryrun only records what it would create (demos).')
param failoverInfrastructure string = 'arm'

@description('Subscription for failed-over and test VMs (empty: this deployment\'s subscription).')
param failoverSubscriptionId string = ''

@description('Existing resource group for failed-over and test VMs (empty: the app\'s own). The app identity gets Contributor on it.')
param failoverResourceGroupName string = ''

@description('Region of failed-over and test VMs (empty: location).')
param failoverLocation string = ''

@allowed(['Standard_LRS', 'StandardSSD_LRS', 'StandardSSD_ZRS', 'Premium_LRS', 'Premium_ZRS'])
param failoverDiskSku string = 'Standard_LRS'

@minValue(60000)
@description('Bound on each ARM operation of a failover, with its long-running completion.')
param failoverOperationTimeoutMs int = 1200000

@description('Client id of the Entra app registration operators sign in with (docs/console.md). Empty: no App Service authentication; the API and the console use function keys.')
param operatorAppClientId string = ''

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var serviceName = 'replication'
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var replicaLogsContainer = 'replica-logs'
var eventGridDeadLetterContainer = 'replica-logs-deadletter'
// Event Grid puts one BlobCreated event per uploaded log here; the merge's queue trigger reads it.
var replicaLogEventsQueue = 'replica-log-events'
var mergeFunctionName = 'mergeReplicaLog'
var replicasContainerName = 'replicas'
var replicaContainers = [
  replicaLogsContainer
  replicasContainerName
  'replica-logs-quarantine'
  'failover'
  eventGridDeadLetterContainer
]
var useCustomerManagedKey = !empty(customerManagedKeyVaultId) && !empty(customerManagedKeyName)
var keyVaultIdParts = split(customerManagedKeyVaultId, '/')
var keyVaultName = useCustomerManagedKey ? last(keyVaultIdParts) : ''
var keyVaultUri = useCustomerManagedKey ? 'https://${keyVaultName}${environment().suffixes.keyvaultDns}/' : ''
var failoverSubscription = empty(failoverSubscriptionId) ? subscription().subscriptionId : failoverSubscriptionId
var failoverResourceGroup = empty(failoverResourceGroupName) ? rg.name : failoverResourceGroupName
// Any restriction of public access needs the VNet: the app's outbound addresses are not fixed.
var useVnet = vnetEnabled || publicNetworkAccess == 'Disabled' || !empty(allowedIpRanges)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module appIdentity 'modules/identity.bicep' = {
  name: 'appIdentity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}app-${resourceToken}'
    location: location
    tags: tags
  }
}

module encryptionIdentity 'modules/identity.bicep' = if (useCustomerManagedKey) {
  name: 'encryptionIdentity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}cmk-${resourceToken}'
    location: location
    tags: tags
  }
}

module keyAccess 'modules/cmk-key-access.bicep' = if (useCustomerManagedKey) {
  name: 'cmkKeyAccess'
  scope: resourceGroup(
    useCustomerManagedKey ? keyVaultIdParts[2] : subscription().subscriptionId,
    useCustomerManagedKey ? keyVaultIdParts[4] : rg.name
  )
  params: {
    keyVaultName: keyVaultName
    encryptionPrincipalId: useCustomerManagedKey ? encryptionIdentity!.outputs.principalId : ''
  }
}

module appStorage 'modules/storage-account.bicep' = {
  name: 'appStorage'
  scope: rg
  dependsOn: [keyAccess]
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: 'Standard_LRS'
    containers: [deploymentContainerName]
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: allowedIpRanges
    customerManagedKeyVaultUri: keyVaultUri
    customerManagedKeyName: customerManagedKeyName
    customerManagedKeyIdentityId: useCustomerManagedKey ? encryptionIdentity!.outputs.id : ''
  }
}

module replicaStorage 'modules/storage-account.bicep' = {
  name: 'replicaStorage'
  scope: rg
  dependsOn: [keyAccess]
  params: {
    name: '${abbrs.storageStorageAccounts}rep${resourceToken}'
    location: location
    tags: tags
    skuName: replicaStorageSku
    containers: replicaContainers
    versionLevelImmutabilityContainers: recoveryPointImmutability == 'None' ? [] : [replicasContainerName]
    queues: [replicaLogEventsQueue]
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: allowedIpRanges
    infrastructureEncryption: replicaInfrastructureEncryption
    customerManagedKeyVaultUri: keyVaultUri
    customerManagedKeyName: customerManagedKeyName
    customerManagedKeyIdentityId: useCustomerManagedKey ? encryptionIdentity!.outputs.id : ''
  }
}

module serviceBus 'modules/service-bus.bicep' = {
  name: 'serviceBus'
  scope: rg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    skuName: serviceBusSku
    publicNetworkAccess: publicNetworkAccess
  }
}

module providerSite 'modules/provider-site.bicep' = [
  for site in providerSites: {
    name: 'providerSite-${site.siteId}'
    scope: rg
    params: {
      serviceBusNamespaceName: serviceBus.outputs.name
      siteId: site.siteId
      providerPrincipalId: site.principalId
    }
  }
]

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    retentionInDays: logRetentionDays
  }
}

module network 'modules/network.bicep' = if (useVnet) {
  name: 'network'
  scope: rg
  params: {
    name: '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
  }
}

// Static, so that the loop below can be planned before anything is deployed; targets are looked up per entry.
var privateEndpointTargets = concat(
  [
    { name: 'app-blob', account: 'app', groupId: 'blob' }
    { name: 'app-queue', account: 'app', groupId: 'queue' }
    { name: 'app-table', account: 'app', groupId: 'table' }
    { name: 'replica-blob', account: 'replica', groupId: 'blob' }
    { name: 'replica-queue', account: 'replica', groupId: 'queue' }
    { name: 'replica-table', account: 'replica', groupId: 'table' }
  ],
  serviceBusSku == 'Premium' ? [{ name: 'bus', account: 'bus', groupId: 'namespace' }] : []
)

module privateEndpoints 'modules/private-endpoint.bicep' = [
  for endpoint in privateEndpointTargets: if (useVnet) {
    name: 'privateEndpoint-${endpoint.name}'
    scope: rg
    params: {
      name: '${abbrs.networkPrivateEndpoints}${endpoint.name}-${resourceToken}'
      location: location
      tags: tags
      subnetId: useVnet ? network!.outputs.privateEndpointSubnetId : ''
      targetResourceId: endpoint.account == 'app'
        ? appStorage.outputs.id
        : endpoint.account == 'replica' ? replicaStorage.outputs.id : serviceBus.outputs.id
      groupId: endpoint.groupId
      privateDnsZoneId: useVnet ? network!.outputs.privateDnsZoneIds[endpoint.groupId] : ''
    }
  }
]

// Every setting the app reads (local.settings.sample.json), in identity form. Connection names match the
// bindings: AzureWebJobsStorage (host, Durable Functions), REPLICA_STORAGE (queue trigger on replica-log-events,
// uploaded logs, replica disks, state tables), PROVIDER_BUS (Service Bus trigger on provider-commands, sends to provider-events).
// What App Service authentication must let through without a sign-in, or the pipeline stops: the extension
// webhooks the platform and the Durable client call (they check their own system keys), Event Grid's webhook
// delivery, the liveness probe, and the console's static files (no data; the console then signs in).
var authExcludedPaths = [
  '/runtime/webhooks/durabletask/*'
  '/runtime/webhooks/eventgrid'
  '/runtime/webhooks/blobs'
  '/runtime/webhooks/servicebus'
  '/admin/host/status'
  '/api/health'
  '/api/console/*'
]

var functionAppSettings = {
  AzureWebJobsStorage__accountName: appStorage.outputs.name
  AzureWebJobsStorage__blobServiceUri: appStorage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: appStorage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: appStorage.outputs.tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: appIdentity.outputs.clientId
  DURABLE_TASK_HUB: durableTaskHubName
  REPLICA_STORAGE__accountName: replicaStorage.outputs.name
  REPLICA_STORAGE__blobServiceUri: replicaStorage.outputs.blobEndpoint
  REPLICA_STORAGE__queueServiceUri: replicaStorage.outputs.queueEndpoint
  REPLICA_STORAGE__tableServiceUri: replicaStorage.outputs.tableEndpoint
  REPLICA_STORAGE__credential: 'managedidentity'
  REPLICA_STORAGE__clientId: appIdentity.outputs.clientId
  PROVIDER_BUS__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  PROVIDER_BUS__credential: 'managedidentity'
  PROVIDER_BUS__clientId: appIdentity.outputs.clientId
  MERGE_CONCURRENCY: string(mergeConcurrency)
  MERGE_GAP_MIN_SECONDS: string(mergeGapMinSeconds)
  STORAGE_CALL_TIMEOUT_MS: string(storageCallTimeoutMs)
  MERGE_READ_BYTES: string(mergeReadBytes)
  MERGE_TIME_BUDGET_SECONDS: string(mergeTimeBudgetSeconds)
  RECOVERY_POINT_IMMUTABILITY: recoveryPointImmutability
  UPLOAD_GRANT_TTL_MINUTES: string(uploadGrantTtlMinutes)
  RESYNC_MAX_PER_SITE: string(resyncMaxPerSite)
  // Finished orchestration instances older than this many days are purged daily (functions/purgeDurableHistory.ts).
  DURABLE_HISTORY_RETENTION_DAYS: '30'
  // Failback (docs/failover.md): the provider's read-only link to a difference log, and its longest silence.
  FAILBACK_GRANT_MINUTES: '60'
  FAILBACK_PROVIDER_TIMEOUT_MINUTES: '60'
  // Failover (docs/failover.md): where VMs go, the replica account their disks are imported from, and the
  // identity ARM calls run as (Contributor on the failover resource group, failoverAccess below).
  FAILOVER_INFRASTRUCTURE: failoverInfrastructure
  FAILOVER_SUBSCRIPTION_ID: failoverSubscription
  FAILOVER_RESOURCE_GROUP: failoverResourceGroup
  FAILOVER_LOCATION: empty(failoverLocation) ? location : failoverLocation
  FAILOVER_STORAGE_ACCOUNT_ID: replicaStorage.outputs.id
  FAILOVER_DISK_SKU: failoverDiskSku
  FAILOVER_OPERATION_TIMEOUT_MS: string(failoverOperationTimeoutMs)
  FAILOVER_IDENTITY_CLIENT_ID: appIdentity.outputs.clientId
  // How long a planned failover waits for the provider to shut the VM down and ship its final cycle.
  PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS: '900'
  // Who may call the API (functions/apiCaller.ts): Entra ID app roles behind App Service authentication when an
  // operator app registration is given, the function key otherwise.
  API_AUTHENTICATION: empty(operatorAppClientId) ? 'FunctionKey' : 'EntraId'
  // Local auth is off on Application Insights: this string only locates the resource; ingestion is
  // authorized by the identity named in the authentication string (Monitoring Metrics Publisher).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentity.outputs.clientId};Authorization=AAD'
  // DefaultAzureCredential (telemetry exporters, SDK clients without a named connection) picks this identity.
  AZURE_CLIENT_ID: appIdentity.outputs.clientId
}

module functionApp 'modules/function-app.bicep' = {
  name: 'functionApp'
  scope: rg
  // The host needs its storage roles at its first start.
  dependsOn: [rbac]
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: serviceName
    identityId: appIdentity.outputs.id
    deploymentStorageBlobEndpoint: appStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    runtimeVersion: '22'
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReady: alwaysReady
    virtualNetworkSubnetId: useVnet ? network!.outputs.appSubnetId : ''
    appSettings: functionAppSettings
    authClientId: operatorAppClientId
    authExcludedPaths: authExcludedPaths
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appStorageAccountName: appStorage.outputs.name
    replicaStorageAccountName: replicaStorage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: appIdentity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

// The failover resource group must exist already unless it is the app's own (created above).
module failoverAccess 'modules/failover-access.bicep' = {
  name: 'failoverAccess'
  scope: resourceGroup(failoverSubscription, failoverResourceGroup)
  params: {
    appPrincipalId: appIdentity.outputs.principalId
  }
}

module replicaEvents 'modules/replica-events.bicep' = {
  name: 'replicaEvents'
  scope: rg
  params: {
    name: '${abbrs.eventGridSystemTopics}replica-${resourceToken}'
    location: location
    tags: tags
    replicaStorageAccountName: replicaStorage.outputs.name
    logsContainerName: replicaLogsContainer
    eventsQueueName: replicaLogEventsQueue
    deadLetterContainerName: eventGridDeadLetterContainer
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}'
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    rpoThresholdSeconds: rpoAlertThresholdSeconds
  }
}

// azd writes these to the environment; operators and local debugging read them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = functionApp.outputs.defaultHostName
output APP_IDENTITY_CLIENT_ID string = appIdentity.outputs.clientId
output REPLICA_STORAGE_ACCOUNT_NAME string = replicaStorage.outputs.name
output REPLICA_LOGS_CONTAINER string = replicaLogsContainer
output REPLICA_EVENTS_SYSTEM_TOPIC_NAME string = replicaEvents.outputs.name
output EVENTGRID_DEADLETTER_CONTAINER string = eventGridDeadLetterContainer
output REPLICA_LOG_EVENTS_QUEUE string = replicaLogEventsQueue
output MERGE_FUNCTION_NAME string = mergeFunctionName
output PROVIDER_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output PROVIDER_COMMANDS_REJECTED_QUEUE string = serviceBus.outputs.rejectedCommandsQueueName
output FAILOVER_RESOURCE_GROUP string = failoverResourceGroup
output APP_STORAGE_ACCOUNT_NAME string = appStorage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
