// The Function App on Flex Consumption (Python 3.11), running as the user-assigned identity.
// Every connection is identity-based; every secret is a Key Vault reference.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param serviceBusNamespaceFqdn string
param keyVaultUri string
param appInsightsConnectionString string
param graphTenantId string
param policyFile string
param maximumInstanceCount int
@description('Client id of an app registration to call Graph with, by its certificate `graph-certificate` in Key Vault; empty: the managed identity.')
param graphClientId string = ''
@description('Wire SEATKEEPER_TEAMS_WEBHOOK_URL to the Key Vault secret `teams-workflow-url` (create the secret first).')
param teamsAlerts bool = false
@description('Instances kept warm for HTTP triggers: Graph flags a webhook slower than 2.9 s and a cold start can be slower.')
param alwaysReadyHttpInstances int = 1

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

// Secrets by Key Vault reference, without a version: a rotated secret is picked up within a day, or at once
// on restart (docs/operations.md). infra/hooks/postprovision.sh creates the generated secrets; the Teams URL and
// the Graph certificate come from the admin (docs/deploy.md).
var kvRef = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/'

var appSettings = {
  // The Functions host: storage by identity, Application Insights by Entra token.
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Bindings: the Service Bus connection named `ServiceBusConnection` in function_app.py.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespaceFqdn
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identityClientId
  // Seatkeeper's own settings (seatkeeper/settings.py, docs/settings.md).
  // Computed, not read from the account: a for-expression (siteSettings below) needs start-time values.
  StateStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}/'
  StateStorage__credential: 'managedidentity'
  StateStorage__clientId: identityClientId
  AZURE_CLIENT_ID: identityClientId
  SEATKEEPER_TENANT_ID: graphTenantId
  SEATKEEPER_POLICY_FILE: policyFile
  SEATKEEPER_LOG_FORMAT: 'json'
  SEATKEEPER_GRAPH_RETRY_BUDGET_SECONDS: '60'
  SEATKEEPER_CLIENT_STATE_KEY: '${kvRef}client-state-key/)'
  SEATKEEPER_HR_SIGNING_SECRET: '${kvRef}hr-signing-secret/)'
  // The named function key the Graph notification URL carries (also set on the host by the hook).
  SEATKEEPER_GRAPH_WEBHOOK_KEY: '${kvRef}graph-webhook-key/)'
}

// Exactly one Graph credential (settings refuse two): the managed identity by default ...
var managedIdentitySettings = {
  SEATKEEPER_MANAGED_IDENTITY_CLIENT_ID: identityClientId
}
// ... or an app registration and its certificate. A Key Vault certificate's secret (same name) holds the
// certificate with its private key: base64 PKCS#12, or PEM, by the certificate's content type.
var certificateSettings = {
  SEATKEEPER_CLIENT_ID: graphClientId
  SEATKEEPER_CLIENT_CERTIFICATE: '${kvRef}graph-certificate/)'
}
// The Teams Workflows URL: its `sig=` is a credential. Named by `url_setting` of the policy's Teams route.
// Wired only once the secret exists: an unresolvable reference would stop the start (docs/settings.md).
var teamsSettings = {
  SEATKEEPER_TEAMS_WEBHOOK_URL: '${kvRef}teams-workflow-url/)'
}
var siteSettings = union(appSettings, empty(graphClientId) ? managedIdentitySettings : certificateSettings, teamsAlerts ? teamsSettings : {})

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is not offered in every region; turn it on where it is
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_16:Microsoft Graph and HR systems cannot present Entra tokens to a webhook; function keys, clientState and Standard Webhooks signatures authenticate them
  // checkov:skip=CKV_AZURE_17:Microsoft Graph does not present client certificates to webhooks
  // checkov:skip=CKV_AZURE_222:Microsoft Graph must reach the webhook over the internet
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales out by itself; one always-ready HTTP instance answers Graph without a cold start
  // checkov:skip=CKV_AZURE_213:The health function needs a function key, which the platform health probe cannot send; alert rules watch health instead
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(siteSettings): { name: setting.key, value: setting.value }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
        alwaysReady: alwaysReadyHttpInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyHttpInstances }] : []
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
