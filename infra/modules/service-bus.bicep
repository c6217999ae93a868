// The provider channel: commands from on-premises providers arrive on a session queue (one session per VM keeps
// one VM's commands in order), events to providers leave on a topic with one filtered subscription per site.
// Entra ID only (no SAS keys); Standard is the lowest tier with topics and sessions.
param name string
param location string
param tags object = {}

@allowed(['Standard', 'Premium'])
@description('Premium adds private endpoints, customer-managed keys and dedicated capacity.')
param skuName string = 'Standard'

@allowed(['Enabled', 'Disabled'])
@description('Only Premium can turn public access off (private endpoints need Premium).')
param publicNetworkAccess string = 'Enabled'

@description('How long a duplicate message id is remembered. Providers re-send with the same id after a timeout.')
param duplicateDetectionWindow string = 'PT30M'

@description('Deliveries of a command before it is dead-lettered.')
@minValue(1)
param commandMaxDeliveryCount int = 10

var commandsQueueName = 'provider-commands'
var eventsTopicName = 'provider-events'
// The Functions trigger cannot dead-letter with a reason, so it completes a rejected command and sends a copy
// with deadLetterReason and deadLetterErrorDescription here (functions/providerCommands.ts). The app sends with
// the namespace-wide Data Sender role; operators read it.
var rejectedCommandsQueueName = 'provider-commands-rejected'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: skuName == 'Premium' ? 1 : null
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: skuName == 'Premium' ? publicNetworkAccess : 'Enabled'
  }
}

resource providerCommands 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: commandsQueueName
  properties: {
    requiresSession: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: commandMaxDeliveryCount
    lockDuration: 'PT1M'
    defaultMessageTimeToLive: 'P7D'
    maxSizeInMegabytes: 1024
  }
}

resource rejectedCommands 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: rejectedCommandsQueueName
  properties: {
    // Kept longer than commands: someone has to look at why a provider's message was refused.
    defaultMessageTimeToLive: 'P14D'
    deadLetteringOnMessageExpiration: false
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    maxSizeInMegabytes: 1024
  }
}

resource providerEvents 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: eventsTopicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: 'P7D'
    supportOrdering: true
    maxSizeInMegabytes: 1024
  }
}

output id string = namespace.id
output name string = namespace.name
// serviceBusEndpoint is https://<name>.<cloud suffix>:443/ ; the host part works in every cloud.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
output commandsQueueName string = providerCommands.name
output eventsTopicName string = providerEvents.name
output rejectedCommandsQueueName string = rejectedCommands.name
