// Lets the storage accounts' encryption identity wrap and unwrap the customer-managed key. Deployed into the
// Key Vault's own resource group, which may differ from the app's. The vault must use Azure RBAC and have
// soft delete and purge protection on (storage refuses a key that could be purged).
param keyVaultName string
param encryptionPrincipalId string

var keyVaultCryptoServiceEncryptionUser = 'e147488a-f6f5-4113-8e2d-b22465e65bf6'

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource keyAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, encryptionPrincipalId, keyVaultCryptoServiceEncryptionUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions',
      keyVaultCryptoServiceEncryptionUser
    )
    principalId: encryptionPrincipalId
    principalType: 'ServicePrincipal'
  }
}
