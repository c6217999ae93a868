// The app's one identity. User-assigned so that role assignments exist before the app does and survive a
// re-created app; every connection names it with __clientId.
@description('Name of the user-assigned managed identity.')
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
