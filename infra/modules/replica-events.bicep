// The merge trigger path: the replica storage account's Event Grid system topic delivers BlobCreated of each
// uploaded .hrl log in the logs container to a Storage queue of the same account, which the merge's queue
// trigger reads. A queue, not a webhook: a merge runs for minutes to hours, far past the 30 s Event Grid waits for
// a webhook answer, and the queue trigger brings retries, a visibility timeout and a poison queue. Needing no
// function key, the subscription is created here with everything else rather than after the code is deployed.
// The topic delivers and dead-letters with its own (system-assigned) identity: the account has no keys, and only
// a system-assigned identity passes its firewall as a trusted service.
param name string
param location string
param tags object = {}
param replicaStorageAccountName string

@description('Container whose new .hrl blobs are announced.')
param logsContainerName string

@description('Queue of the same account that receives the events (created by the storage account module).')
param eventsQueueName string

@description('Container of the same account for events that could not be delivered.')
param deadLetterContainerName string

@description('Delivery attempts before an event is dead-lettered (Event Grid allows 1-30).')
@minValue(1)
@maxValue(30)
param maxDeliveryAttempts int = 30

@description('Minutes Event Grid keeps retrying one event (at most 1440).')
@minValue(1)
@maxValue(1440)
param eventTimeToLiveInMinutes int = 1440

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
}

resource replicaStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: replicaStorageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: replicaStorage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: replicaStorage
  name: 'default'
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: eventsQueueName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: replicaStorage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Scoped to the one queue: the topic may add messages there and nowhere else.
resource queueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, systemTopic.id, roles.storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageQueueDataMessageSender
    )
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Scoped to the dead-letter container only: the topic never needs to touch replica data.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      roles.storageBlobDataContributor
    )
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource mergeSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'merge-replica-log'
  // Deliveries are authorized by these roles; without them the first events would be retried, then dead-lettered.
  dependsOn: [queueSender, deadLetterWriter]
  properties: {
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: replicaStorage.id
          queueName: eventsQueueName
          // Never expire: an event waits in the queue until the merge has taken it (or poisoned it).
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: ['Microsoft.Storage.BlobCreated']
      subjectBeginsWith: '/blobServices/default/containers/${logsContainerName}/blobs/'
      subjectEndsWith: '.hrl'
      isSubjectCaseSensitive: false
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: replicaStorage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output name string = systemTopic.name
output id string = systemTopic.id
output subscriptionName string = mergeSubscription.name
