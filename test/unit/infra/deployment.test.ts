import {
    alertProblems,
    alertTelemetryNames,
    appRoleProblems,
    appSettingCoverageProblems,
    appSettings,
    codeSettingProblems,
    containerProblems,
    eventSubscriptionProblems,
    failoverAccessProblems,
    flexConsumptionProblems,
    identityProblems,
    localAuthProblems,
    moduleProblems,
    parameterFileProblems,
    roleAssignmentShapeProblems,
    secretSettingProblems,
    serviceBusProblems,
    syntaxProblems,
    transportProblems,
} from './checks';
import { InfraModel } from './infraModel';

type Check = (model: InfraModel) => string[];

/** Replaces exactly one occurrence, so a mutation cannot silently miss its target. */
function once(search: string | RegExp, replacement: string): (source: string) => string {
    return (source) => {
        const pattern =
            typeof search === 'string' ? new RegExp(search.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g') : search;
        const hits = source.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
        if (hits !== 1) throw new Error(`expected one match of ${String(search)}, found ${hits}`);
        return source.replace(new RegExp(pattern.source), replacement);
    };
}

/** Removes the declaration of resource `symbol` (up to the next blank line). */
function withoutResource(symbol: string): (source: string) => string {
    return once(new RegExp(`\\n(//[^\\n]*\\n)*resource ${symbol} [\\s\\S]*?\\n\\]?\\n(?=\\n|$)`), '\n');
}

const model = InfraModel.load();

describe('the azd deployment (infra/, azure.yaml, hooks)', () => {
    const checks: Record<string, Check> = {
        'every Bicep file parses without error or missing nodes': syntaxProblems,
        'every module resolves to a file in infra/ and gets exactly its params': moduleProblems,
        "main.parameters.json matches main.bicep and passes azd's principal": parameterFileProblems,
        'the app runs as its user-assigned identity': identityProblems,
        'the app is on Flex Consumption with Node 20': flexConsumptionProblems,
        'every role assignment is a built-in role named guid(scope, principal, role)': roleAssignmentShapeProblems,
        'the app identity and the deploying user get every data role they need': appRoleProblems,
        'keys are disabled on storage, Service Bus and Application Insights': localAuthProblems,
        'every endpoint is HTTPS only with TLS 1.2 at least': transportProblems,
        'the provider queue and topic use sessions and duplicate detection': serviceBusProblems,
        'the replica account has the containers the app uses': containerProblems,
        'no app setting carries a key or connection string': secretSettingProblems,
        'every setting in local.settings.sample.json is set, connections in identity form': appSettingCoverageProblems,
        'every setting the code reads is in local.settings.sample.json': codeSettingProblems,
        'the app identity is Contributor on the resource group failover deploys to': failoverAccessProblems,
        'the postdeploy hook creates the Event Grid subscription of the blob trigger': eventSubscriptionProblems,
        'alerts cover Critical items, RPO and failed jobs, and docs name what they query': alertProblems,
    };
    it.each(Object.entries(checks))('%s', (_name, check) => {
        expect(check(model)).toEqual([]);
    });

    it('gives the app settings in identity form', () => {
        const settings = appSettings(model);
        expect(settings).toMatchObject({
            AzureWebJobsStorage__credential: 'managedidentity',
            REPLICA_STORAGE__credential: 'managedidentity',
            PROVIDER_BUS__credential: 'managedidentity',
            DURABLE_TASK_HUB: expect.anything(),
        });
        expect(Object.keys(settings)).not.toEqual(
            expect.arrayContaining(['AzureWebJobsStorage', 'REPLICA_STORAGE', 'PROVIDER_BUS']),
        );
    });

    it('queries the telemetry names the app side must emit', () => {
        expect(alertTelemetryNames(model)).toEqual([
            'Critical',
            'JobFailed',
            'ReplicationHealthChanged',
            'ReplicationRpoSeconds',
        ]);
    });
});

/**
 * Each check must fail when what it guards is taken away: these rewrite one file of a copy of the deployment
 * and expect the check to name the problem.
 */
describe('the checks fail when what they guard is removed', () => {
    const cases: Array<[string, Check, (m: InfraModel) => InfraModel, RegExp]> = [
        [
            'a syntax error',
            syntaxProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/service-bus.bicep',
                    once(
                        'maxSizeInMegabytes: 1024\n  }\n}\n\nresource providerEvents',
                        'maxSizeInMegabytes: 1024\n  }\n\nresource providerEvents',
                    ),
                ),
            /service-bus\.bicep:\d+:\d+ (ERROR|MISSING)/,
        ],
        [
            'a module path that does not resolve',
            moduleProblems,
            (m) => m.withBicep('infra/main.bicep', once("'modules/rbac.bicep'", "'modules/roles.bicep'")),
            /modules\/roles\.bicep does not resolve/,
        ],
        [
            'a misspelt module param',
            moduleProblems,
            (m) =>
                m.withBicep(
                    'infra/main.bicep',
                    once(
                        '    deploymentContainerName: deploymentContainerName\n',
                        '    deploymentContainer: deploymentContainerName\n',
                    ),
                ),
            /does not pass required param deploymentContainerName/,
        ],
        [
            'the principal no longer passed by azd',
            parameterFileProblems,
            (m) =>
                m.withText(
                    'infra/main.parameters.json',
                    once('"principalId": { "value": "${AZURE_PRINCIPAL_ID}" },', ''),
                ),
            /AZURE_PRINCIPAL_ID/,
        ],
        [
            'a system-assigned identity instead of the user-assigned one',
            identityProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/function-app.bicep',
                    once("  identity: {\n    type: 'UserAssigned'", "  identity: {\n    type: 'SystemAssigned'"),
                ),
            /identity type should be UserAssigned/,
        ],
        [
            'the deployment package read without the identity',
            identityProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/function-app.bicep',
                    once("type: 'UserAssignedIdentity'", "type: 'StorageAccountConnectionString'"),
                ),
            /deployment package/,
        ],
        [
            'a Node version other than 20',
            flexConsumptionProblems,
            (m) => m.withBicep('infra/main.bicep', once("runtimeVersion: '20'", "runtimeVersion: '18'")),
            /Node version is '18'/,
        ],
        [
            'a Consumption (Y1) plan',
            flexConsumptionProblems,
            (m) => m.withBicep('infra/modules/function-app.bicep', once("name: 'FC1'", "name: 'Y1'")),
            /not Flex Consumption/,
        ],
        [
            'a wrong role definition id',
            roleAssignmentShapeProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/rbac.bicep',
                    once(
                        "monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'",
                        "monitoringMetricsPublisher: '3913510d-0000-4e42-8a64-420c390055eb'",
                    ),
                ),
            /not a known built-in role id/,
        ],
        [
            'a role assignment named after another role',
            roleAssignmentShapeProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/rbac.bicep',
                    once(
                        'name: guid(serviceBus.id, principal.id, roles.serviceBusDataSender)',
                        'name: guid(serviceBus.id, principal.id, roles.serviceBusDataReceiver)',
                    ),
                ),
            /guid\(\) names role roles\.serviceBusDataReceiver/,
        ],
        [
            'a role assignment named after another scope',
            roleAssignmentShapeProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/rbac.bicep',
                    once(
                        'name: guid(replicaStorage.id, principal.id, roles.storageBlobDelegator)',
                        'name: guid(appStorage.id, principal.id, roles.storageBlobDelegator)',
                    ),
                ),
            /starts with appStorage\.id, not the scope replicaStorage\.id/,
        ],
        [
            'a role assignment named without its principal',
            roleAssignmentShapeProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/provider-site.bicep',
                    once(
                        'name: guid(providerCommands.id, providerPrincipalId, roles.serviceBusDataSender)',
                        "name: guid(providerCommands.id, 'provider', roles.serviceBusDataSender)",
                    ),
                ),
            /names principal 'provider'/,
        ],
        [
            'the Storage Blob Delegator role removed',
            appRoleProblems,
            (m) => m.withBicep('infra/modules/rbac.bicep', withoutResource('replicaStorageBlobDelegator')),
            /one Storage Blob Delegator assignment on replicaStorage, found 0/,
        ],
        [
            'the Durable Functions queue role removed',
            appRoleProblems,
            (m) => m.withBicep('infra/modules/rbac.bicep', withoutResource('appStorageQueueDataContributor')),
            /Storage Queue Data Contributor assignment on appStorage, found 0/,
        ],
        [
            'the deploying user dropped',
            appRoleProblems,
            (m) => m.withBicep('infra/main.bicep', once('deployerPrincipalId: principalId', "deployerPrincipalId: ''")),
            /rbac\.deployerPrincipalId should be principalId/,
        ],
        [
            'shared key access allowed',
            localAuthProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/storage-account.bicep',
                    once('allowSharedKeyAccess: false', 'allowSharedKeyAccess: true'),
                ),
            /allowSharedKeyAccess should be false/,
        ],
        [
            'shared key access left to the default',
            localAuthProblems,
            (m) => m.withBicep('infra/modules/storage-account.bicep', once('    allowSharedKeyAccess: false\n', '')),
            /allowSharedKeyAccess should be false/,
        ],
        [
            'Service Bus SAS keys enabled',
            localAuthProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/service-bus.bicep',
                    once('disableLocalAuth: true', 'disableLocalAuth: false'),
                ),
            /service-bus\.bicep: disableLocalAuth/,
        ],
        [
            'Application Insights keys enabled',
            localAuthProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/monitoring.bicep',
                    once('DisableLocalAuth: true', 'DisableLocalAuth: false'),
                ),
            /Application Insights DisableLocalAuth/,
        ],
        [
            'public network access fixed instead of a parameter',
            localAuthProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/storage-account.bicep',
                    once('    publicNetworkAccess: publicNetworkAccess\n', "    publicNetworkAccess: 'Enabled'\n"),
                ),
            /publicNetworkAccess should come from its parameter/,
        ],
        [
            'storage accepting TLS 1.0',
            transportProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/storage-account.bicep',
                    once("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"),
                ),
            /minimumTlsVersion should be TLS1_2/,
        ],
        [
            'Service Bus accepting TLS 1.0',
            transportProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/service-bus.bicep',
                    once("minimumTlsVersion: '1.2'", "minimumTlsVersion: '1.0'"),
                ),
            /service-bus\.bicep: minimumTlsVersion/,
        ],
        [
            'the app serving plain HTTP',
            transportProblems,
            (m) => m.withBicep('infra/modules/function-app.bicep', once('httpsOnly: true', 'httpsOnly: false')),
            /httpsOnly should be true/,
        ],
        [
            'the app accepting TLS 1.0',
            transportProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/function-app.bicep',
                    once("      minTlsVersion: '1.2'", "      minTlsVersion: '1.0'"),
                ),
            /siteConfig\.minTlsVersion should be '1\.2'/,
        ],
        [
            'FTP left on',
            transportProblems,
            (m) =>
                m.withBicep('infra/modules/function-app.bicep', once("ftpsState: 'Disabled'", "ftpsState: 'FtpsOnly'")),
            /ftpsState/,
        ],
        [
            'the command queue without sessions',
            serviceBusProblems,
            (m) =>
                m.withBicep('infra/modules/service-bus.bicep', once('requiresSession: true', 'requiresSession: false')),
            /provider-commands: requiresSession should be true/,
        ],
        [
            'the event topic without duplicate detection',
            serviceBusProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/service-bus.bicep',
                    once(
                        "properties: {\n    requiresDuplicateDetection: true\n    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow\n    defaultMessageTimeToLive: 'P7D'\n    supportOrdering",
                        "properties: {\n    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow\n    defaultMessageTimeToLive: 'P7D'\n    supportOrdering",
                    ),
                ),
            /provider-events: requiresDuplicateDetection/,
        ],
        [
            'the rejected-commands queue removed',
            serviceBusProblems,
            (m) =>
                m.withBicep('infra/modules/service-bus.bicep', once(/\nresource rejectedCommands [\s\S]*?\n}\n/, '\n')),
            /no provider-commands-rejected queue/,
        ],
        [
            'the rejected-commands queue renamed away from the output binding',
            serviceBusProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/service-bus.bicep',
                    once("'provider-commands-rejected'", "'provider-commands-refused'"),
                ),
            /no provider-commands-rejected queue/,
        ],
        [
            'the Basic tier allowed',
            serviceBusProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/service-bus.bicep',
                    once("@allowed(['Standard', 'Premium'])", "@allowed(['Basic', 'Standard', 'Premium'])"),
                ),
            /Basic has no topics or sessions/,
        ],
        [
            'a site subscription that keeps the catch-all rule',
            serviceBusProblems,
            (m) => m.withBicep('infra/modules/provider-site.bicep', once("name: '$Default'", "name: 'site-filter'")),
            /replace \$Default/,
        ],
        [
            'the failover container removed',
            containerProblems,
            (m) => m.withBicep('infra/main.bicep', once("  'failover'\n", '')),
            /no container failover/,
        ],
        [
            'a connection string in an app setting',
            secretSettingProblems,
            (m) =>
                m.withBicep(
                    'infra/main.bicep',
                    once(
                        '  DURABLE_TASK_HUB: durableTaskHubName\n',
                        "  DURABLE_TASK_HUB: durableTaskHubName\n  LEGACY: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=${key}'\n",
                    ),
                ),
            /app setting LEGACY .* carries a secret/,
        ],
        [
            'listKeys in an app setting',
            secretSettingProblems,
            (m) =>
                m.withBicep(
                    'infra/main.bicep',
                    once(
                        '  DURABLE_TASK_HUB: durableTaskHubName\n',
                        "  DURABLE_TASK_HUB: durableTaskHubName\n  BUS_KEY: listKeys(busRule, '2022-10-01-preview').primaryKey\n",
                    ),
                ),
            /app setting BUS_KEY/,
        ],
        [
            'Application Insights without Entra authentication',
            secretSettingProblems,
            (m) => m.withBicep('infra/main.bicep', once(/ {2}APPLICATIONINSIGHTS_AUTHENTICATION_STRING: [^\n]+\n/, '')),
            /without Entra ID authentication/,
        ],
        [
            'settings written inline, bypassing the checked list',
            secretSettingProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/function-app.bicep',
                    once('      http20Enabled: true\n', '      http20Enabled: true\n      appSettings: []\n'),
                ),
            /inline siteConfig\.appSettings/,
        ],
        [
            'the Service Bus namespace setting removed',
            appSettingCoverageProblems,
            (m) => m.withBicep('infra/main.bicep', once(/ {2}PROVIDER_BUS__fullyQualifiedNamespace: [^\n]+\n/, '')),
            /app setting PROVIDER_BUS__fullyQualifiedNamespace is not set/,
        ],
        [
            'MERGE_CONCURRENCY removed',
            appSettingCoverageProblems,
            (m) => m.withBicep('infra/main.bicep', once(/ {2}MERGE_CONCURRENCY: [^\n]+\n/, '')),
            /app setting MERGE_CONCURRENCY is not set/,
        ],
        [
            'a failover setting removed',
            appSettingCoverageProblems,
            (m) => m.withBicep('infra/main.bicep', once(/ {2}FAILOVER_RESOURCE_GROUP: [^\n]+\n/, '')),
            /app setting FAILOVER_RESOURCE_GROUP is not set/,
        ],
        [
            'UPLOAD_GRANT_TTL_MINUTES removed',
            appSettingCoverageProblems,
            (m) => m.withBicep('infra/main.bicep', once(/ {2}UPLOAD_GRANT_TTL_MINUTES: [^\n]+\n/, '')),
            /app setting UPLOAD_GRANT_TTL_MINUTES is not set/,
        ],
        [
            'a setting the code reads dropped from the sample settings',
            codeSettingProblems,
            (m) => m.withText('local.settings.sample.json', once(/\n {8}"RESYNC_MAX_PER_SITE": "2",/, '')),
            /functions\/resyncScheduler\.ts reads RESYNC_MAX_PER_SITE, which local\.settings\.sample\.json does not list/,
        ],
        [
            'the Contributor role on the failover resource group removed',
            failoverAccessProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/failover-access.bicep',
                    once(/\nresource failoverContributor [\s\S]*?\n}\n/, '\n'),
                ),
            /expected one Contributor assignment for appPrincipalId on resourceGroup\(\), found 0/,
        ],
        [
            'the failover role granted in one resource group while VMs go to another',
            failoverAccessProblems,
            (m) =>
                m.withBicep(
                    'infra/main.bicep',
                    once('  FAILOVER_RESOURCE_GROUP: failoverResourceGroup\n', "  FAILOVER_RESOURCE_GROUP: 'rg-vms'\n"),
                ),
            /FAILOVER_RESOURCE_GROUP is not the resource group failoverAccess grants on \(failoverResourceGroup\)/,
        ],
        [
            'failover running as another identity than the one granted',
            failoverAccessProblems,
            (m) => m.withBicep('infra/main.bicep', once(/ {2}FAILOVER_IDENTITY_CLIENT_ID: [^\n]+\n/, '')),
            /FAILOVER_IDENTITY_CLIENT_ID should be the app identity's client id/,
        ],
        [
            'a storage connection without managed identity',
            appSettingCoverageProblems,
            (m) => m.withBicep('infra/main.bicep', once("  REPLICA_STORAGE__credential: 'managedidentity'\n", '')),
            /REPLICA_STORAGE__credential should be managedidentity/,
        ],
        [
            'a storage connection given as a connection string',
            appSettingCoverageProblems,
            (m) =>
                m.withBicep(
                    'infra/main.bicep',
                    once(
                        '  DURABLE_TASK_HUB: durableTaskHubName\n',
                        "  DURABLE_TASK_HUB: durableTaskHubName\n  AzureWebJobsStorage: 'UseDevelopmentStorage=true'\n",
                    ),
                ),
            /connection AzureWebJobsStorage is set as a connection string/,
        ],
        [
            'a new setting the app reads but Azure does not get',
            appSettingCoverageProblems,
            (m) =>
                m.withText(
                    'local.settings.sample.json',
                    once(
                        '"MERGE_CONCURRENCY": "8",',
                        '"MERGE_CONCURRENCY": "8",\n        "RESYNC_BLOCK_SIZE": "4194304",',
                    ),
                ),
            /app setting RESYNC_BLOCK_SIZE is not set/,
        ],
        [
            'FUNCTIONS_WORKER_RUNTIME as an app setting',
            appSettingCoverageProblems,
            (m) =>
                m.withBicep(
                    'infra/main.bicep',
                    once(
                        '  DURABLE_TASK_HUB: durableTaskHubName\n',
                        "  DURABLE_TASK_HUB: durableTaskHubName\n  FUNCTIONS_WORKER_RUNTIME: 'node'\n",
                    ),
                ),
            /FUNCTIONS_WORKER_RUNTIME must not be an app setting/,
        ],
        [
            'no postdeploy hook',
            eventSubscriptionProblems,
            (m) => m.withText('azure.yaml', once(/hooks:[\s\S]*$/, '')),
            /postdeploy\.posix should run/,
        ],
        [
            'a subscription for every blob, not only .hrl logs',
            eventSubscriptionProblems,
            (m) =>
                m.withBicep('infra/hooks/replica-log-subscription.bicep', once("      subjectEndsWith: '.hrl'\n", '')),
            /subjectEndsWith should be \.hrl/,
        ],
        [
            'a webhook for another function',
            eventSubscriptionProblems,
            (m) =>
                m.withBicep(
                    'infra/hooks/replica-log-subscription.bicep',
                    once(
                        "param functionName string = 'mergeReplicaLog'",
                        "param functionName string = 'processBlobUpload'",
                    ),
                ),
            /functionName should default to mergeReplicaLog/,
        ],
        [
            'events dropped instead of dead-lettered',
            eventSubscriptionProblems,
            (m) =>
                m.withBicep(
                    'infra/hooks/replica-log-subscription.bicep',
                    once(/ {4}deadLetterWithResourceIdentity: \{[\s\S]*?\n {4}\}\n/, ''),
                ),
            /dead-lettered/,
        ],
        [
            'no retry policy',
            eventSubscriptionProblems,
            (m) =>
                m.withBicep(
                    'infra/hooks/replica-log-subscription.bicep',
                    once(/ {4}retryPolicy: \{[\s\S]*?\n {4}\}\n/, ''),
                ),
            /retryPolicy\.maxDeliveryAttempts missing/,
        ],
        [
            'a hook passing a param the template does not have',
            eventSubscriptionProblems,
            (m) =>
                m.withText(
                    'scripts/postdeploy.sh',
                    once(
                        '    systemTopicName="$REPLICA_EVENTS_SYSTEM_TOPIC_NAME"',
                        '    topicName="$REPLICA_EVENTS_SYSTEM_TOPIC_NAME"',
                    ),
                ),
            /postdeploy\.sh: passes topicName, not a param of the hook template\n.*postdeploy\.sh: does not pass systemTopicName/,
        ],
        [
            'a hook needing a value main.bicep does not output',
            eventSubscriptionProblems,
            (m) => m.withBicep('infra/main.bicep', once(/output REPLICA_EVENTS_SYSTEM_TOPIC_NAME [^\n]+\n/, '')),
            /needs REPLICA_EVENTS_SYSTEM_TOPIC_NAME/,
        ],
        [
            'the job failure alert removed',
            alertProblems,
            (m) => m.withBicep('infra/modules/alerts.bicep', once("'JobFailed'", "'JobCompleted'")),
            /no alert when a job failed/,
        ],
        [
            'alerts nobody receives',
            alertProblems,
            (m) =>
                m.withBicep(
                    'infra/modules/alerts.bicep',
                    once('emailAddress: alertEmail', "emailAddress: 'nobody@example.com'"),
                ),
            /does not e-mail alertEmail/,
        ],
        [
            'a telemetry name missing from the docs',
            alertProblems,
            (m) => m.withText('docs/deploy.md', (t) => t.replace(/ReplicationRpoSeconds/g, 'RpoSeconds')),
            /does not document the telemetry name ReplicationRpoSeconds/,
        ],
    ];

    it.each(cases)('notices %s', (_name, check, mutate, expected) => {
        const problems = check(mutate(model));
        expect(problems.join('\n')).toMatch(expected);
    });

    it('notices a role granted to the app only, not to every principal', () => {
        const mutated = model.withBicep(
            'infra/modules/rbac.bicep',
            once(
                "name: guid(applicationInsights.id, principal.id, roles.monitoringMetricsPublisher)\n    scope: applicationInsights\n    properties: {\n      roleDefinitionId: subscriptionResourceId(\n        'Microsoft.Authorization/roleDefinitions',\n        roles.monitoringMetricsPublisher\n      )\n      principalId: principal.id",
                "name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)\n    scope: applicationInsights\n    properties: {\n      roleDefinitionId: subscriptionResourceId(\n        'Microsoft.Authorization/roleDefinitions',\n        roles.monitoringMetricsPublisher\n      )\n      principalId: appPrincipalId",
            ),
        );
        expect(appRoleProblems(mutated).join('\n')).toMatch(
            /Monitoring Metrics Publisher on applicationInsights is not granted to every principal/,
        );
    });
});
