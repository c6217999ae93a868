// The Functions app on the Flex Consumption plan (Linux, Node 22). It runs as the user-assigned identity,
// pulls its code package from a blob container with that identity, and serves HTTPS only with TLS 1.2 at least.
param name string
param planName string
param location string
param tags object = {}

@description('The azd service this app hosts (azure.yaml services key).')
param serviceName string

param identityId string

@description('Blob endpoint of the app storage account, with trailing slash.')
param deploymentStorageBlobEndpoint string
param deploymentContainerName string

@allowed(['22'])
@description('Node.js major version: the newest that Flex Consumption supports GA (docs/deploy.md).')
param runtimeVersion string = '22'

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Always-ready instances per trigger group, e.g. [{ name: \'blob\', instanceCount: 1 }]; each one is billed while idle.')
param alwaysReady array = []

@description('Subnet for outbound VNet integration (empty: none).')
param virtualNetworkSubnetId string = ''

@description('All app settings, as name/value pairs. Connections are identity-based: no secrets belong here.')
param appSettings object

@description('Client id of the Entra app registration that signs operators in (App Service authentication). Empty: no App Service authentication; the API takes function keys.')
param authClientId string = ''

@description('Tenant of that app registration.')
param authTenantId string = tenant().tenantId

@description('Paths App Service authentication lets through unauthenticated: what the platform itself calls, and the console\'s static files.')
param authExcludedPaths array = []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${deploymentStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReady
      }
      runtime: {
        name: 'node'
        version: runtimeVersion
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: appSettings
}

// App Service authentication in front of the app: operators sign in with Entra ID (the console's session cookie,
// or a bearer token for the API's audience); unauthenticated requests get 401 and the console offers the sign-in.
// No client secret: the sign-in uses the ID token flow, and the API only validates tokens. The app roles
// (Replication.Reader, Replication.Operator) are checked by the app (functions/apiCaller.ts).
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(authClientId)) {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: authExcludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

// Publishing with a user name and password would bypass Entra ID; azd deploys with a token instead.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = functionApp.id
output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
