// Azure Monitor alert rules: dead letters on any queue, a missing upkeep/reconciliation heartbeat, function
// failures, and sustained Graph throttling. Queries are explained in docs/operations.md.
param location string
param tags object
@description('Email for notifications; empty creates the rules without an action group.')
param alertEmail string
param serviceBusNamespaceId string
param appInsightsId string
@description('Timer functions that must succeed at least once per heartbeat window.')
param heartbeatFunctions array
@description('How long upkeep or reconciliation may stay silent before the heartbeat alert fires.')
param heartbeatWindow string = 'PT2H'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-seatkeeper'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'seatkeeper'
    enabled: true
    emailReceivers: [
      { name: 'operators', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

var actionGroups = empty(alertEmail) ? [] : [actionGroup.id]

resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'seatkeeper-dead-letters'
  location: 'global'
  tags: tags
  properties: {
    description: 'A message is dead-lettered on a Seatkeeper queue: inspect and resubmit it (docs/operations.md).'
    severity: 1
    enabled: true
    scopes: [serviceBusNamespaceId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          // One alert per queue: split by the queue's name.
          dimensions: [{ name: 'EntityName', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: [for id in actionGroups: { actionGroupId: id }]
  }
}

resource heartbeat 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'seatkeeper-heartbeat-missing'
  location: location
  tags: tags
  properties: {
    displayName: 'Seatkeeper heartbeat missing'
    description: 'Subscription upkeep or reconciliation has not succeeded within the window: notifications may lapse.'
    severity: 1
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT15M'
    windowSize: heartbeatWindow
    autoMitigate: true
    criteria: {
      allOf: [
        {
          // One row per expected timer function with no successful run in the window.
          query: 'let expected = dynamic(${string(heartbeatFunctions)}); let seen = requests | where success == true and name in (expected) | distinct name; print name = expected | mv-expand name to typeof(string) | join kind=leftanti seen on name'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: actionGroups }
  }
}

resource failures 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'seatkeeper-function-failures'
  location: location
  tags: tags
  properties: {
    displayName: 'Seatkeeper function failures'
    description: 'A function invocation failed (an exception escaped a trigger): see the exception in Application Insights.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: 'requests | where success == false | summarize failures = count() by operation_Name'
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          dimensions: [{ name: 'operation_Name', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: actionGroups }
  }
}

resource throttling 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: 'seatkeeper-graph-throttling'
  location: location
  tags: tags
  properties: {
    displayName: 'Seatkeeper: Graph throttling sustained'
    description: 'Microsoft Graph has answered 429 for 15 minutes: work is slowing down; see docs/operations.md.'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          // Log events of seatkeeper/adapters/graph/client.py: a 429 retried, or throttled `$batch` items retried.
          query: 'traces | where (message has "graph.retry_scheduled" and message has "Throttled") or message has "graph.batch_retry_scheduled"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 10
          // Sustained: three five-minute windows in a row.
          failingPeriods: { numberOfEvaluationPeriods: 3, minFailingPeriodsToAlert: 3 }
        }
      ]
    }
    actions: { actionGroups: actionGroups }
  }
}
