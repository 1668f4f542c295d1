// Application Insights on a Log Analytics workspace; local authentication off (the identity publishes).
param workspaceName string
param appInsightsName string
param location string
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 90
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
  }
}

output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
// The connection string holds an ingestion endpoint and an instrumentation key, not a credential: with local
// authentication disabled nothing can be sent without an Entra token.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
