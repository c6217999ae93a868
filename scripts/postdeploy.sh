#!/bin/sh
# azd postdeploy hook: subscribes the mergeReplicaLog blob trigger (source EventGrid) to BlobCreated events of
# .hrl logs in replica-logs. It runs after deploy because the webhook's blobs_extension key exists only once the
# Functions host has started with the app's code. The subscription itself is infra/hooks/replica-log-subscription.bicep
# (the key is read inside Azure, never printed). Safe to re-run: the deployment updates the same subscription.
set -eu

KEY_WAIT_ATTEMPTS="${KEY_WAIT_ATTEMPTS:-30}"
KEY_WAIT_SECONDS="${KEY_WAIT_SECONDS:-10}"
DEPLOY_ATTEMPTS="${DEPLOY_ATTEMPTS:-3}"

fail() {
    echo "postdeploy: $*" >&2
    exit 1
}

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is required: https://learn.microsoft.com/cli/azure/install-azure-cli"

script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
template="$script_dir/../infra/hooks/replica-log-subscription.bicep"

# azd passes its environment's values to hooks; when run by hand, read them from azd.
if [ -z "${AZURE_FUNCTION_APP_NAME:-}" ] && command -v azd >/dev/null 2>&1; then
    env_values=$(azd env get-values)
    while IFS='=' read -r key value; do
        [ -n "$key" ] || continue
        value=${value#\"}
        value=${value%\"}
        export "$key=$value"
    done <<EOF_VALUES
$env_values
EOF_VALUES
fi

for name in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME REPLICA_EVENTS_SYSTEM_TOPIC_NAME \
    REPLICA_STORAGE_ACCOUNT_NAME EVENTGRID_DEADLETTER_CONTAINER; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "$name is not set: run 'azd provision' first (it is an output of infra/main.bicep)"
done
function_name="${MERGE_FUNCTION_NAME:-mergeReplicaLog}"

# The host creates the blobs_extension system key when it first loads an EventGrid blob trigger; listing the
# keys also wakes a scaled-to-zero app. Ask only whether it exists, so the key itself is never printed.
attempt=1
while :; do
    exists=$(az functionapp keys list --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
        --query 'systemKeys.blobs_extension != `null`' --output tsv 2>/dev/null || echo false)
    [ "$exists" = "true" ] && break
    [ "$attempt" -ge "$KEY_WAIT_ATTEMPTS" ] &&
        fail "the blobs_extension key of $AZURE_FUNCTION_APP_NAME did not appear; check that $function_name is deployed (az functionapp function list)"
    echo "postdeploy: waiting for the blobs_extension key of $AZURE_FUNCTION_APP_NAME ($attempt/$KEY_WAIT_ATTEMPTS)"
    attempt=$((attempt + 1))
    sleep "$KEY_WAIT_SECONDS"
done

# Event Grid validates a new webhook by calling it; a cold app can miss that window, so retry the deployment.
attempt=1
until az deployment group create \
    --resource-group "$AZURE_RESOURCE_GROUP" \
    --name "replica-log-subscription" \
    --template-file "$template" \
    --parameters \
    functionAppName="$AZURE_FUNCTION_APP_NAME" \
    systemTopicName="$REPLICA_EVENTS_SYSTEM_TOPIC_NAME" \
    replicaStorageAccountName="$REPLICA_STORAGE_ACCOUNT_NAME" \
    deadLetterContainerName="$EVENTGRID_DEADLETTER_CONTAINER" \
    functionName="$function_name" \
    --output none; do
    [ "$attempt" -ge "$DEPLOY_ATTEMPTS" ] && fail "could not create the Event Grid subscription after $attempt attempts"
    echo "postdeploy: Event Grid subscription not created yet, retrying ($attempt/$DEPLOY_ATTEMPTS)"
    attempt=$((attempt + 1))
    sleep "$KEY_WAIT_SECONDS"
done

echo "postdeploy: BlobCreated events for *.hrl in replica-logs now reach $function_name (dead letters: $EVENTGRID_DEADLETTER_CONTAINER)"
