# azd postdeploy hook (Windows): subscribes the mergeReplicaLog blob trigger (source EventGrid) to BlobCreated
# events of .hrl logs in replica-logs. Same steps as postdeploy.sh: wait for the blobs_extension key, which exists
# only once the host runs the deployed code, then deploy infra/hooks/replica-log-subscription.bicep (the key is read
# inside Azure, never printed). Safe to re-run.
$ErrorActionPreference = 'Stop'

$keyWaitAttempts = if ($env:KEY_WAIT_ATTEMPTS) { [int]$env:KEY_WAIT_ATTEMPTS } else { 30 }
$keyWaitSeconds = if ($env:KEY_WAIT_SECONDS) { [int]$env:KEY_WAIT_SECONDS } else { 10 }
$deployAttempts = if ($env:DEPLOY_ATTEMPTS) { [int]$env:DEPLOY_ATTEMPTS } else { 3 }
$template = Join-Path $PSScriptRoot '..' 'infra' 'hooks' 'replica-log-subscription.bicep'

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    throw 'postdeploy: the Azure CLI (az) is required: https://learn.microsoft.com/cli/azure/install-azure-cli'
}

# azd passes its environment's values to hooks; when run by hand, read them from azd.
if (-not $env:AZURE_FUNCTION_APP_NAME -and (Get-Command azd -ErrorAction SilentlyContinue)) {
    foreach ($line in (& azd env get-values)) {
        if ($line -match '^([^=]+)=(.*)$') {
            [Environment]::SetEnvironmentVariable($Matches[1], ($Matches[2] -replace '^"|"$', ''))
        }
    }
}

foreach ($name in 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'REPLICA_EVENTS_SYSTEM_TOPIC_NAME',
    'REPLICA_STORAGE_ACCOUNT_NAME', 'EVENTGRID_DEADLETTER_CONTAINER') {
    if (-not [Environment]::GetEnvironmentVariable($name)) {
        throw "postdeploy: $name is not set: run 'azd provision' first (it is an output of infra/main.bicep)"
    }
}
$functionName = if ($env:MERGE_FUNCTION_NAME) { $env:MERGE_FUNCTION_NAME } else { 'mergeReplicaLog' }

# Ask only whether the key exists, so the key itself is never printed.
for ($attempt = 1; ; $attempt++) {
    $exists = az functionapp keys list --resource-group $env:AZURE_RESOURCE_GROUP --name $env:AZURE_FUNCTION_APP_NAME `
        --query 'systemKeys.blobs_extension != `null`' --output tsv 2>$null
    if ($exists -eq 'true') { break }
    if ($attempt -ge $keyWaitAttempts) {
        throw "postdeploy: the blobs_extension key of $($env:AZURE_FUNCTION_APP_NAME) did not appear; check that $functionName is deployed"
    }
    Write-Host "postdeploy: waiting for the blobs_extension key of $($env:AZURE_FUNCTION_APP_NAME) ($attempt/$keyWaitAttempts)"
    Start-Sleep -Seconds $keyWaitSeconds
}

# Event Grid validates a new webhook by calling it; a cold app can miss that window, so retry the deployment.
for ($attempt = 1; ; $attempt++) {
    az deployment group create `
        --resource-group $env:AZURE_RESOURCE_GROUP `
        --name 'replica-log-subscription' `
        --template-file $template `
        --parameters `
        "functionAppName=$($env:AZURE_FUNCTION_APP_NAME)" `
        "systemTopicName=$($env:REPLICA_EVENTS_SYSTEM_TOPIC_NAME)" `
        "replicaStorageAccountName=$($env:REPLICA_STORAGE_ACCOUNT_NAME)" `
        "deadLetterContainerName=$($env:EVENTGRID_DEADLETTER_CONTAINER)" `
        "functionName=$functionName" `
        --output none
    if ($LASTEXITCODE -eq 0) { break }
    if ($attempt -ge $deployAttempts) {
        throw "postdeploy: could not create the Event Grid subscription after $attempt attempts"
    }
    Write-Host "postdeploy: Event Grid subscription not created yet, retrying ($attempt/$deployAttempts)"
    Start-Sleep -Seconds $keyWaitSeconds
}

Write-Host "postdeploy: BlobCreated events for *.hrl in replica-logs now reach $functionName (dead letters: $($env:EVENTGRID_DEADLETTER_CONTAINER))"
