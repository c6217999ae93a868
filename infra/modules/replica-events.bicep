// The Event Grid system topic of the replica storage account. The blob trigger (source EventGrid, the only kind
// Flex Consumption supports) needs its subscription, which scripts/postdeploy creates once the app's code, and so
// its blobs_extension key, exists. Undeliverable events are dead-lettered, with the topic's own identity, to a
// container of the same account.
param name string
param location string
param tags object = {}
param replicaStorageAccountName string
param deadLetterContainerName string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

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

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
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

// Scoped to the dead-letter container only: the topic never needs to touch replica data.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = systemTopic.name
output id string = systemTopic.id
