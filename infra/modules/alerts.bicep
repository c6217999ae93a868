// Alerts an operator of a disaster-recovery service acts on, as log queries over the app's telemetry in
// Application Insights. The names queried here (trace event names, their customDimensions, the metric name) are
// a contract with the app: docs/deploy.md lists them, and the app emits them.
param location string
param tags object = {}
param namePrefix string
param applicationInsightsId string

@description('Where alert e-mails go (empty: the action group has no receivers yet).')
param alertEmail string = ''

@description('A VM whose recovery point is older than this, in seconds, raises the RPO alert.')
@minValue(60)
param rpoThresholdSeconds int = 3600

resource operators 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'hvr-dr'
    enabled: true
    emailReceivers: empty(alertEmail)
      ? []
      : [
          {
            name: 'operators'
            emailAddress: alertEmail
            useCommonAlertSchema: true
          }
        ]
  }
}

resource replicationCritical 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-replication-critical'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Replicated item is Critical'
    description: 'A protected VM\'s replication health became Critical: a non-recoverable error needs an operator.'
    severity: 1
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| extend e = parse_json(message)
| where tostring(e.metric) == 'ReplicationHealthChanged'
| where tostring(e.to) == 'Critical'
| extend vmId = tostring(e.vmId), siteId = tostring(e.siteId)
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'vmId'
              operator: 'Include'
              values: ['*']
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [operators.id]
    }
  }
}

resource rpoExceeded 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-rpo-exceeded'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'RPO over threshold'
    description: 'A protected VM\'s latest recovery point is older than the RPO threshold.'
    severity: 2
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| extend e = parse_json(message)
| where tostring(e.metric) == 'ReplicationRpoSeconds'
| extend vmId = tostring(e.vmId)
| summarize RpoSeconds = max(todouble(e.value)) by vmId
'''
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'RpoSeconds'
          operator: 'GreaterThan'
          threshold: rpoThresholdSeconds
          dimensions: [
            {
              name: 'vmId'
              operator: 'Include'
              values: ['*']
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [operators.id]
    }
  }
}

resource jobFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-job-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Job failed'
    description: 'A protection job (enable, initial replication, resync, disable, test failover) ended in failure.'
    severity: 2
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| extend e = parse_json(message)
| where tostring(e.metric) == 'JobFailed'
| extend jobType = tostring(e.jobType), vmId = tostring(e.vmId)
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'jobType'
              operator: 'Include'
              values: ['*']
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [operators.id]
    }
  }
}

output actionGroupId string = operators.id

// A recovery point the merge scored as mass encryption (shared/replica/churnSignal.ts): an operator must look now,
// before the clean points age out. The app logs one JSON trace per flagged point.
resource suspiciousChurn 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-suspicious-churn'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Suspicious churn (possible ransomware)'
    description: 'A recovery point looks like mass encryption: a large share of a disk rewritten with random-looking data. Test-fail over to LatestClean.'
    severity: 0
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| extend e = parse_json(message)
| where tostring(e.metric) == 'SuspiciousChurn'
| extend vmId = tostring(e.vmId), recoveryPointId = tostring(e.recoveryPointId)
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'vmId'
              operator: 'Include'
              values: ['*']
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [operators.id]
    }
  }
}

// The storage refused the immutability policy on a held point's snapshots: the hold is then the app's alone.
resource immutabilityFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-immutability-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Recovery point not immutable'
    description: 'Storage refused the immutability policy on a recovery point\'s snapshots; only the app protects it from deletion.'
    severity: 1
    enabled: true
    scopes: [applicationInsightsId]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
traces
| extend e = parse_json(message)
| where tostring(e.metric) == 'RecoveryPointImmutabilityFailed'
| extend vmId = tostring(e.vmId)
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'vmId'
              operator: 'Include'
              values: ['*']
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [operators.id]
    }
  }
}
