// Data-plane roles for the app's identity and, so that local debugging against Azure works, for the person who
// ran azd. One assignment per role and principal, named guid(scope, principal, role) so a re-run finds it.
param appStorageAccountName string
param replicaStorageAccountName string
param serviceBusNamespaceName string
param applicationInsightsName string

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Object id of the deploying user (empty: no assignments for a person).')
param deployerPrincipalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
param deployerPrincipalType string = 'User'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageBlobDelegator: 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var principals = concat(
  [
    {
      id: appPrincipalId
      type: 'ServicePrincipal'
    }
  ],
  empty(deployerPrincipalId)
    ? []
    : [
        {
          id: deployerPrincipalId
          type: deployerPrincipalType
        }
      ]
)

resource appStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: appStorageAccountName
}

resource replicaStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: replicaStorageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// App storage: the Functions host (leases, keys, deployment package) and Durable Functions (task hub queues,
// history and instance tables, large-message blobs) need all three.
resource appStorageBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(appStorage.id, principal.id, roles.storageBlobDataOwner)
    scope: appStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
      principalId: principal.id
      principalType: principal.type
    }
  }
]

resource appStorageQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(appStorage.id, principal.id, roles.storageQueueDataContributor)
    scope: appStorage
    properties: {
      roleDefinitionId: subscriptionResourceId(
        'Microsoft.Authorization/roleDefinitions',
        roles.storageQueueDataContributor
      )
      principalId: principal.id
      principalType: principal.type
    }
  }
]

resource appStorageTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(appStorage.id, principal.id, roles.storageTableDataContributor)
    scope: appStorage
    properties: {
      roleDefinitionId: subscriptionResourceId(
        'Microsoft.Authorization/roleDefinitions',
        roles.storageTableDataContributor
      )
      principalId: principal.id
      principalType: principal.type
    }
  }
]

// Replica storage: replica page blobs, snapshots and uploaded logs (blobs), state (tables), and user-delegation
// keys for the write-only upload SAS that providers get.
resource replicaStorageBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(replicaStorage.id, principal.id, roles.storageBlobDataOwner)
    scope: replicaStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
      principalId: principal.id
      principalType: principal.type
    }
  }
]

resource replicaStorageTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(replicaStorage.id, principal.id, roles.storageTableDataContributor)
    scope: replicaStorage
    properties: {
      roleDefinitionId: subscriptionResourceId(
        'Microsoft.Authorization/roleDefinitions',
        roles.storageTableDataContributor
      )
      principalId: principal.id
      principalType: principal.type
    }
  }
]

resource replicaStorageBlobDelegator 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(replicaStorage.id, principal.id, roles.storageBlobDelegator)
    scope: replicaStorage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDelegator)
      principalId: principal.id
      principalType: principal.type
    }
  }
]

// The merge's queue trigger on REPLICA_STORAGE reads replica-log-events (Event Grid's BlobCreated events) and
// moves a message that keeps failing to replica-log-events-poison, in that account.
resource replicaStorageQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(replicaStorage.id, principal.id, roles.storageQueueDataContributor)
    scope: replicaStorage
    properties: {
      roleDefinitionId: subscriptionResourceId(
        'Microsoft.Authorization/roleDefinitions',
        roles.storageQueueDataContributor
      )
      principalId: principal.id
      principalType: principal.type
    }
  }
]

resource serviceBusDataSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(serviceBus.id, principal.id, roles.serviceBusDataSender)
    scope: serviceBus
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
      principalId: principal.id
      principalType: principal.type
    }
  }
]

resource serviceBusDataReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(serviceBus.id, principal.id, roles.serviceBusDataReceiver)
    scope: serviceBus
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
      principalId: principal.id
      principalType: principal.type
    }
  }
]

// Application Insights has local auth off: telemetry is accepted only from identities with this role.
resource monitoringMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principal in principals: {
    name: guid(applicationInsights.id, principal.id, roles.monitoringMetricsPublisher)
    scope: applicationInsights
    properties: {
      roleDefinitionId: subscriptionResourceId(
        'Microsoft.Authorization/roleDefinitions',
        roles.monitoringMetricsPublisher
      )
      principalId: principal.id
      principalType: principal.type
    }
  }
]
