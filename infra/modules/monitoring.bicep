// Log Analytics and workspace-based Application Insights. Local (key) authentication is off on both: the app
// sends telemetry with its managed identity (Monitoring Metrics Publisher), and alerts query the workspace.
param location string
param tags object = {}
param logAnalyticsName string
param applicationInsightsName string

@description('Days Log Analytics keeps data; 30 is included in the ingestion price.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Daily ingestion cap in GB (-1: no cap). A cap bounds cost but drops telemetry, and alerts with it.')
param dailyQuotaGb int = -1

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    workspaceCapping: {
      dailyQuotaGb: dailyQuotaGb
    }
    features: {
      disableLocalAuth: true
    }
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output logAnalyticsId string = logAnalytics.id
output applicationInsightsId string = applicationInsights.id
output applicationInsightsName string = applicationInsights.name
// Not a secret: with local auth disabled, ingestion needs an Entra token as well (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
output applicationInsightsConnectionString string = applicationInsights.properties.ConnectionString
