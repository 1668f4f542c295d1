// Seatkeeper in Azure, for `azd up`: a Function App on Flex Consumption, Service Bus queues, state tables,
// Application Insights on Log Analytics, Key Vault for every secret, one user-assigned identity, alert rules.
// No secret is a parameter or an output: infra/hooks/postprovision.sh creates them in Key Vault (docs/deploy.md).
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name; names the resource group and seeds resource names.')
param environmentName string

@minLength(1)
@description('Azure region of every resource.')
param location string

@description('Object id of the person or pipeline running azd: may set Key Vault secrets (postprovision hook).')
param deployerPrincipalId string = ''

@description('Entra tenant that Seatkeeper manages licenses in; empty: the subscription\'s tenant.')
param graphTenantId string = ''
var managedTenantId = empty(graphTenantId) ? subscription().tenantId : graphTenantId

@description('Email address that Azure Monitor alerts go to (empty: alert rules fire without a notification).')
param alertEmail string = ''

// Graph allows 3,000 writes per 2.5 minutes per app and tenant; every instance paces its own writes and a 429
// is the authority, so few instances go as fast as many, without burning the quota on throttled retries.
@minValue(1)
@maxValue(40)
@description('Most Function App instances at once (keeps Graph writes under the per-app-and-tenant quota).')
param maximumInstanceCount int = 4

@description('Client id of an app registration to call Graph with (its certificate `graph-certificate` in Key Vault); empty: the managed identity.')
param graphClientId string = ''

@description('Wire the Teams Workflows URL (Key Vault secret `teams-workflow-url`, created by you first) into the app.')
param teamsAlerts bool = false

@description('Policy file, relative to the app root, deployed with the code.')
param policyFile string = 'policies/policy.yaml'

var tags = { 'azd-env-name': environmentName, app: 'seatkeeper' }
var token = toLower(uniqueString(subscription().id, environmentName, location))

// The queues of design §3; every one is session-enabled (sessions keep each subject's messages in order).
var queueNames = ['group-changes', 'hr-events', 'license-checks', 'alerts']

// The state tables the Table Storage adapter uses (seatkeeper/adapters/, checked by tests/unit/test_infra*.py).
var stateTables = loadJsonContent('state-tables.json')

// Timer functions whose successful runs are the heartbeat (upkeep and reconciliation).
var heartbeatFunctions = loadJsonContent('heartbeat-functions.json')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-seatkeeper-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-seatkeeper-${token}'
    appInsightsName: 'appi-seatkeeper-${token}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stsk${token}'
    location: location
    tags: tags
    tables: stateTables
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-seatkeeper-${token}'
    location: location
    tags: tags
    queueNames: queueNames
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-sk-${take(token, 17)}'
    location: location
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    deployerPrincipalId: deployerPrincipalId
    deployerManagesCertificates: !empty(graphClientId)
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  dependsOn: [roles]
  params: {
    name: 'func-seatkeeper-${token}'
    planName: 'plan-seatkeeper-${token}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    serviceBusNamespaceFqdn: serviceBus.outputs.fqdn
    keyVaultUri: keyVault.outputs.uri
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    graphTenantId: managedTenantId
    policyFile: policyFile
    maximumInstanceCount: maximumInstanceCount
    graphClientId: graphClientId
    teamsAlerts: teamsAlerts
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    alertEmail: alertEmail
    serviceBusNamespaceId: serviceBus.outputs.id
    appInsightsId: monitoring.outputs.appInsightsId
    heartbeatFunctions: heartbeatFunctions
  }
}

// Outputs are names and endpoints only; azd stores them in .azure/<env>/.env for the hook and the docs.
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name
output AZURE_STORAGE_ACCOUNT string = storage.outputs.name
output SEATKEEPER_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output SEATKEEPER_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output SEATKEEPER_TENANT_ID string = managedTenantId
