// Service Bus (Standard: Basic has no sessions and no duplicate detection) with the queues of design §3.
param name string
param location string
param tags object
param queueNames array

// Sessions and duplicate detection cannot be changed once a queue exists: decide them here, once.
var queueProperties = {
  requiresSession: true
  requiresDuplicateDetection: true
  // Service Bus remembers message ids for at most 7 days; handlers keep their own idempotency records beyond.
  duplicateDetectionHistoryTimeWindow: 'P7D'
  // The longest lock Service Bus allows; the host renews it, and the Graph retry budget (60 s) fits inside.
  lockDuration: 'PT5M'
  maxDeliveryCount: 10
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: 'P14D'
  enableBatchedOperations: true
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  // Double encryption needs the Premium tier; Standard is enough for this load
  // Customer-managed keys need the Premium tier
  // Flex Consumption without a virtual network reaches Service Bus publicly; local auth is off, so only Entra identities get in
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' }
  identity: { type: 'SystemAssigned' }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for queue in queueNames: {
    parent: namespace
    name: queue
    properties: queueProperties
  }
]

output id string = namespace.id
output name string = namespace.name
output fqdn string = '${namespace.name}.servicebus.windows.net'
