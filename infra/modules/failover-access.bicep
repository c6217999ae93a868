// Failover and test failover create managed disks, NICs, VNets and VMs in this resource group as the app's
// identity (shared/failover/armInfrastructure.ts): Contributor here, nowhere else. Deployed with the resource
// group's scope, so it works for a group in another subscription too.
targetScope = 'resourceGroup'

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

var roles = {
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
}

resource failoverContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, appPrincipalId, roles.contributor)
  scope: resourceGroup()
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.contributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}
