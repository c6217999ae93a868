// A storage account reached only with Entra ID: no shared keys, no anonymous blobs, HTTPS with TLS 1.2 at least,
// encrypted at rest with Microsoft-managed keys or, when a Key Vault key is given, with that key.
param name string
param location string
param tags object = {}

@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_RAGRS'])
param skuName string = 'Standard_LRS'

@description('Blob containers to create.')
param containers array = []

@description('Queues to create.')
param queues array = []

@description('Tables to create (the app also creates its tables on first use).')
param tables array = []

@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'

@description('Public IP ranges (CIDR) allowed through the firewall; when set, every other public address is denied.')
param allowedIpRanges array = []

@description('Soft-delete window for blobs and containers, in days (0 turns it off).')
@minValue(0)
@maxValue(365)
param deleteRetentionDays int = 7

@description('Containers with version-level immutability (WORM) enabled: the app sets a time-based immutability policy on each held recovery point\'s snapshots. Turns on blob versioning for the account (required by version-level immutability) and a lifecycle rule that deletes previous versions after a day (a version under a policy stays until it expires). Containers that exist already without it must be migrated (docs/deploy.md).')
param versionLevelImmutabilityContainers array = []

@description('A second layer of encryption at rest (infrastructure encryption). Can only be chosen when the account is created.')
param infrastructureEncryption bool = false

@description('Key Vault URI of a customer-managed key (empty: Microsoft-managed keys).')
param customerManagedKeyVaultUri string = ''
param customerManagedKeyName string = ''

@description('Resource id of the user-assigned identity that may unwrap the customer-managed key.')
param customerManagedKeyIdentityId string = ''

var useCustomerManagedKey = !empty(customerManagedKeyVaultUri) && !empty(customerManagedKeyName)
var restrictNetwork = publicNetworkAccess == 'Disabled' || !empty(allowedIpRanges)

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  identity: useCustomerManagedKey
    ? {
        type: 'UserAssigned'
        userAssignedIdentities: {
          '${customerManagedKeyIdentityId}': {}
        }
      }
    : null
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      // Trusted Azure services (Event Grid dead-lettering with its identity) pass the firewall.
      bypass: 'AzureServices'
      defaultAction: restrictNetwork ? 'Deny' : 'Allow'
      ipRules: [
        for range in allowedIpRanges: {
          value: range
          action: 'Allow'
        }
      ]
    }
    encryption: {
      keySource: useCustomerManagedKey ? 'Microsoft.Keyvault' : 'Microsoft.Storage'
      keyvaultproperties: useCustomerManagedKey
        ? {
            keyvaulturi: customerManagedKeyVaultUri
            keyname: customerManagedKeyName
          }
        : null
      identity: useCustomerManagedKey
        ? {
            userAssignedIdentity: customerManagedKeyIdentityId
          }
        : null
      requireInfrastructureEncryption: infrastructureEncryption
      // 'Account' key type puts queues and tables under the same (possibly customer-managed) key as blobs.
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: deleteRetentionDays > 0
      days: deleteRetentionDays > 0 ? max(deleteRetentionDays, 1) : null
    }
    containerDeleteRetentionPolicy: {
      enabled: deleteRetentionDays > 0
      days: deleteRetentionDays > 0 ? max(deleteRetentionDays, 1) : null
    }
    isVersioningEnabled: !empty(versionLevelImmutabilityContainers)
  }
}

// With versioning on, deleting a blob (every merged log) leaves a previous version: drop those after a day.
resource versionCleanup 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (!empty(versionLevelImmutabilityContainers)) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-previous-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: ['blockBlob']
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: 1
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containers: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
      immutableStorageWithVersioning: contains(versionLevelImmutabilityContainers, container)
        ? {
            enabled: true
          }
        : null
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in queues: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource storageTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tables: {
    parent: tableService
    name: table
  }
]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
