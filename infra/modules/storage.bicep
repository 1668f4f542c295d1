// The storage account: the Functions host (identity-based AzureWebJobsStorage), the deployment package
// container of Flex Consumption, and Seatkeeper's state tables. Shared keys are off: identities only.
param name string
param location string
param tags object
@description('State tables of the Table Storage adapter.')
param tables array

var deploymentContainerName = 'app-package'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59:Flex Consumption without a virtual network reaches its storage over public endpoints; shared keys are off, so only Entra identities get in
  // checkov:skip=CKV_AZURE_35:Default action Allow for the same reason; access needs an Entra token with a data-plane role
  // checkov:skip=CKV_AZURE_206:Locally redundant storage is enough: state is rebuilt by reconciliation (docs/operations.md)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource stateTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tables: {
    parent: tableService
    name: table
  }
]

output name string = account.name
output deploymentContainerName string = deploymentContainer.name
output tableEndpoint string = account.properties.primaryEndpoints.table
