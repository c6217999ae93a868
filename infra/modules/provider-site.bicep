// What one on-premises site needs on the bus: its own subscription on provider-events that receives only events
// whose application property siteId names it, the right to send commands, and the right to read its subscription.
// Providers sign in with their own Entra identity (a service principal per site); no SAS keys exist.
param serviceBusNamespaceName string

@description('The site id as the app knows it; events carry it in the siteId application property.')
@minLength(1)
@maxLength(45)
param siteId string

@description('Object id of the Entra service principal the site\'s provider signs in with.')
param providerPrincipalId string

@allowed(['ServicePrincipal', 'User', 'Group'])
param providerPrincipalType string = 'ServicePrincipal'

var roles = {
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource providerCommands 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: namespace
  name: 'provider-commands'
}

resource providerEvents 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' existing = {
  parent: namespace
  name: 'provider-events'
}

resource siteSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = {
  parent: providerEvents
  name: 'site-${siteId}'
  properties: {
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    defaultMessageTimeToLive: 'P7D'
  }
}

// Named $Default so that it replaces the catch-all rule every new subscription gets; otherwise the site
// would receive every site's events.
resource siteFilter 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2024-01-01' = {
  parent: siteSubscription
  name: '$Default'
  properties: {
    filterType: 'CorrelationFilter'
    correlationFilter: {
      properties: {
        siteId: siteId
      }
    }
  }
}

resource sendCommands 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(providerCommands.id, providerPrincipalId, roles.serviceBusDataSender)
  scope: providerCommands
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: providerPrincipalId
    principalType: providerPrincipalType
  }
}

resource receiveSiteEvents 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(siteSubscription.id, providerPrincipalId, roles.serviceBusDataReceiver)
  scope: siteSubscription
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
    principalId: providerPrincipalId
    principalType: providerPrincipalType
  }
}

output subscriptionName string = siteSubscription.name
