// Key Vault for every secret Seatkeeper holds: the clientState key, the HR signing secret, the Graph webhook
// function key, the Teams Workflows URL and, with an app registration, the Graph certificate.
// The template creates none of them (a secret in a template ends up in deployment history):
// infra/hooks/postprovision.sh does, and app settings reference them.
param name string
param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189:App Service resolves Key Vault references over the public endpoint unless the app is in a virtual network; RBAC limits who reads
  // checkov:skip=CKV_AZURE_109:Same reason: network rules would block Key Vault references from Flex Consumption without a virtual network
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
