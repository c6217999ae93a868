import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Json, JsonObject, jsonText } from '../../support/armTemplate';
import { bicepEntryPoints, bicepUnavailableReason, compileBicep } from '../../support/bicep';
import {
    alertProblems,
    immutabilityProblems,
    alertTelemetryNames,
    appSettingCoverageProblems,
    appSettings,
    azureYamlProblems,
    codeSettingProblems,
    failoverAccessProblems,
    MERGE_TRIGGER,
    mergeTriggerProblems,
    operatorAuthProblems,
    secretSettingProblems,
} from './appChecks';
import {
    AZURE_NODE_VERSION,
    apiVersionProblems,
    appRoleProblems,
    compileProblems,
    containerProblems,
    flexConsumptionProblems,
    identityProblems,
    localAuthProblems,
    parameterFileProblems,
    roleAssignmentShapeProblems,
    serviceBusProblems,
    transportProblems,
} from './checks';
import { InfraModel, REPO_ROOT, passedParameters } from './infraModel';

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

function props(resource: JsonObject): JsonObject {
    return resource.properties as JsonObject;
}

/** Removes the resources of a template that `drop` selects (exactly one). */
function withoutResource(drop: (r: JsonObject) => boolean): (template: JsonObject) => void {
    return (template) => {
        const resources = template.resources as JsonObject[];
        const index = resources.findIndex(drop);
        if (index < 0 || resources.filter(drop).length !== 1) throw new Error('expected one resource to drop');
        resources.splice(index, 1);
    };
}

const nameMentions = (fragment: string) => (r: JsonObject) => jsonText(r.name).includes(fragment);

const unavailable = bicepUnavailableReason();
if (unavailable) console.log(unavailable);
const describeCompiled = unavailable ? describe.skip : describe;

describe('settings the code reads (no compile needed)', () => {
    const texts = InfraModel.load(REPO_ROOT, { compile: false });

    it('every setting the code reads is in local.settings.sample.json', () => {
        expect(codeSettingProblems(texts)).toEqual([]);
    });

    it('docs/deploy.md names the runtime, the trigger path and the package step', () => {
        const docs = texts.text('docs/deploy.md');
        expect(docs).toContain(`**Node.js ${AZURE_NODE_VERSION}**`);
        for (const name of Object.values(MERGE_TRIGGER)) expect(docs).toContain(`\`${name}`);
        expect(docs).toContain('infra/tools/package.sh');
    });

    it('notices a setting the code reads dropped from the sample settings', () => {
        const mutated = texts.withText('local.settings.sample.json', once(/\n {8}"RESYNC_MAX_PER_SITE": "2",/, ''));
        expect(codeSettingProblems(mutated).join('\n')).toMatch(
            /functions\/resyncScheduler\.ts reads RESYNC_MAX_PER_SITE, which local\.settings\.sample\.json does not list/,
        );
    });
});

describeCompiled('the Bicep compiler and linter (the real CLI)', () => {
    it('compile every entry point with no diagnostic at all (the build runs the linter too)', () => {
        const diagnostics: Record<string, string[]> = {};
        for (const file of bicepEntryPoints()) diagnostics[relative(REPO_ROOT, file)] = compileBicep(file).diagnostics;
        expect(Object.keys(diagnostics)).toContain('infra/main.bicep');
        expect(compileProblems(diagnostics)).toEqual([]);
    });

    it('report a type error, a compiler warning and a linter rule (as an error, infra/bicepconfig.json)', () => {
        const dir = mkdtempSync(join(tmpdir(), 'bicep-check-'));
        try {
            copyFileSync(join(REPO_ROOT, 'infra', 'bicepconfig.json'), join(dir, 'bicepconfig.json'));
            writeFileSync(join(dir, 'other.bicep'), "output v string = 'a'\n");
            writeFileSync(
                join(dir, 'broken.bicep'),
                [
                    "param count int = 'three'",
                    'var unused = count',
                    "module other 'other.bicep' = if (count > 0) {",
                    "  name: 'other'",
                    '}',
                    'output v string = other.outputs.v',
                    '',
                ].join('\n'),
            );
            expect(() => compileBicep(join(dir, 'broken.bicep'))).toThrow(
                /Error BCP033[\s\S]*Error no-unused-vars[\s\S]*Warning BCP318/,
            );
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describeCompiled('the azd deployment (compiled ARM JSON, azure.yaml)', () => {
    // A skipped describe still runs its body to collect the tests: without the CLI, load the texts only.
    const model = unavailable ? InfraModel.load(REPO_ROOT, { compile: false }) : InfraModel.load();

    const checks: Record<string, Check> = {
        "main.parameters.json matches main.bicep and passes azd's principal": parameterFileProblems,
        'each resource type has one dated, non-preview API version': apiVersionProblems,
        'the app runs as its user-assigned identity': identityProblems,
        'the app is on Flex Consumption with Node 22': flexConsumptionProblems,
        'every role assignment is a built-in role named guid(scope, principal, role)': roleAssignmentShapeProblems,
        'the app identity and the deploying user get every data role they need': appRoleProblems,
        'keys are disabled on storage, Service Bus and Application Insights': localAuthProblems,
        'every endpoint is HTTPS only with TLS 1.2 at least': transportProblems,
        'the provider queue and topic use sessions and duplicate detection': serviceBusProblems,
        'the replica account has the containers and the queue the app uses': containerProblems,
        'no app setting carries a key or connection string': secretSettingProblems,
        'every setting in local.settings.sample.json is set, connections in identity form': appSettingCoverageProblems,
        'the app identity is Contributor on the resource group failover deploys to': failoverAccessProblems,
        'Event Grid queues BlobCreated of .hrl logs for the merge, with identities only': mergeTriggerProblems,
        'azure.yaml deploys the function app from the package of what runs': azureYamlProblems,
        'alerts cover Critical items, RPO and failed jobs, and docs name what they query': alertProblems,
        'operators sign in with Entra ID when an operator app is given, the platform webhooks excluded':
            operatorAuthProblems,
        'held recovery points can be locked: version-level immutability on replicas': immutabilityProblems,
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
            DURABLE_TASK_HUB: 'hvr',
        });
        expect(Object.keys(settings)).not.toEqual(
            expect.arrayContaining(['AzureWebJobsStorage', 'REPLICA_STORAGE', 'PROVIDER_BUS']),
        );
    });

    it('queries the telemetry names the app side must emit', () => {
        expect(alertTelemetryNames(model)).toEqual([
            'Critical',
            'JobFailed',
            'RecoveryPointImmutabilityFailed',
            'ReplicationHealthChanged',
            'ReplicationRpoSeconds',
            'SuspiciousChurn',
        ]);
    });

    /**
     * Each check must fail when what it guards is taken away: these change one thing in a copy of the compiled
     * template (or of a text file) and expect the check to name the problem.
     */
    describe('the checks fail when what they guard is removed', () => {
        const site = (mutate: (r: JsonObject) => void) => (m: InfraModel) =>
            m.withResource(['functionApp'], 'Microsoft.Web/sites', mutate);
        const appAccount = (mutate: (p: JsonObject) => void) => (m: InfraModel) =>
            m.withResource(['appStorage'], 'Microsoft.Storage/storageAccounts', (r) => mutate(props(r)));
        const bus =
            (type: string, mutate: (p: JsonObject) => void, which?: (r: JsonObject) => boolean) => (m: InfraModel) =>
                m.withResource(['serviceBus'], type, (r) => mutate(r), which);
        // Bicep inlines the settings (they read module outputs) into what main passes to the functionApp module.
        const setting = (mutate: (s: JsonObject) => void) => (m: InfraModel) =>
            m.withModule('functionApp', (d) => mutate(passedParameters(d).appSettings!.value as JsonObject));
        const eventSubscription = (mutate: (p: JsonObject) => void) => (m: InfraModel) =>
            m.withResource(['replicaEvents'], 'Microsoft.EventGrid/systemTopics/eventSubscriptions', (r) =>
                mutate(props(r)),
            );
        const delivery = (p: JsonObject) => (p.deliveryWithResourceIdentity as JsonObject).destination as JsonObject;

        const cases: Array<[string, Check, (m: InfraModel) => InfraModel, RegExp]> = [
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
                'two API versions of one resource type',
                apiVersionProblems,
                (m) =>
                    m.withResource(
                        ['appStorage'],
                        'Microsoft.Storage/storageAccounts',
                        (r) => (r.apiVersion = '2022-09-01'),
                    ),
                /microsoft\.storage\/storageaccounts is deployed with several API versions: 2022-09-01, 2023-05-01/,
            ],
            [
                'a preview API version',
                apiVersionProblems,
                (m) =>
                    m.withResource(
                        ['monitoring'],
                        'Microsoft.Insights/components',
                        (r) => (r.apiVersion = '2020-02-02-preview'),
                    ),
                /preview API version 2020-02-02-preview/,
            ],
            [
                'a system-assigned identity instead of the user-assigned one',
                identityProblems,
                site((r) => ((r.identity as JsonObject).type = 'SystemAssigned')),
                /identity type should be UserAssigned/,
            ],
            [
                'the deployment package read without the identity',
                identityProblems,
                site((r) => {
                    const storage = (props(r).functionAppConfig as JsonObject).deployment as JsonObject;
                    ((storage.storage as JsonObject).authentication as JsonObject).type =
                        'StorageAccountConnectionString';
                }),
                /deployment package/,
            ],
            [
                'Node 20 (past its end of life)',
                flexConsumptionProblems,
                (m) => m.withModule('functionApp', (d) => (passedParameters(d).runtimeVersion!.value = '20')),
                /Node version is 20, not 22/,
            ],
            [
                'a Consumption (Y1) plan',
                flexConsumptionProblems,
                (m) =>
                    m.withResource(
                        ['functionApp'],
                        'Microsoft.Web/serverfarms',
                        (r) => ((r.sku as JsonObject).name = 'Y1'),
                    ),
                /not Flex Consumption/,
            ],
            [
                'a wrong role definition id',
                roleAssignmentShapeProblems,
                (m) =>
                    m.withModuleTemplate(['rbac'], (t) => {
                        ((t.variables as JsonObject).roles as JsonObject).monitoringMetricsPublisher =
                            '3913510d-0000-4e42-8a64-420c390055eb';
                    }),
                /not a known built-in role id/,
            ],
            [
                'a role assignment named after another role',
                roleAssignmentShapeProblems,
                (m) =>
                    m.withModuleTemplate(['rbac'], (t) => {
                        const r = (t.resources as JsonObject[]).find(
                            (x) => (x.copy as JsonObject)?.name === 'serviceBusDataSender',
                        )!;
                        r.name = jsonText(r.name).replace(
                            "variables('roles').serviceBusDataSender",
                            "variables('roles').serviceBusDataReceiver",
                        );
                    }),
                /guid\(\) names role 4f6d3b9b/,
            ],
            [
                'a role assignment named after another scope',
                roleAssignmentShapeProblems,
                (m) =>
                    m.withModuleTemplate(['rbac'], (t) => {
                        const r = (t.resources as JsonObject[]).find(
                            (x) => (x.copy as JsonObject)?.name === 'replicaStorageBlobDelegator',
                        )!;
                        r.name = jsonText(r.name).replace(
                            "parameters('replicaStorageAccountName')",
                            "parameters('appStorageAccountName')",
                        );
                    }),
                /guid\(\) starts with Microsoft\.Storage\/storageAccounts\/appStorage\.outputs\.name, not the scope .*replicaStorage/,
            ],
            [
                'a role assignment named without its principal',
                roleAssignmentShapeProblems,
                (m) =>
                    m.withModuleTemplate(['replicaEvents'], (t) => {
                        const r = (t.resources as JsonObject[]).find(
                            (x) => x.type === 'Microsoft.Authorization/roleAssignments',
                        )!;
                        r.name = jsonText(r.name).replace(
                            /resourceId\('Microsoft\.EventGrid\/systemTopics', parameters\('name'\)\)/,
                            "'topic'",
                        );
                    }),
                /names principal topic/,
            ],
            [
                'the Storage Blob Delegator role removed',
                appRoleProblems,
                (m) =>
                    m.withModuleTemplate(
                        ['rbac'],
                        withoutResource((r) => (r.copy as JsonObject)?.name === 'replicaStorageBlobDelegator'),
                    ),
                /one Storage Blob Delegator assignment on replicaStorage, found 0/,
            ],
            [
                'the merge queue role removed from the replica account',
                appRoleProblems,
                (m) =>
                    m.withModuleTemplate(
                        ['rbac'],
                        withoutResource((r) => (r.copy as JsonObject)?.name === 'replicaStorageQueueDataContributor'),
                    ),
                /Storage Queue Data Contributor assignment on replicaStorage, found 0/,
            ],
            [
                'a role granted to the app only, not to every principal',
                appRoleProblems,
                (m) =>
                    m.withModuleTemplate(['rbac'], (t) => {
                        const r = (t.resources as JsonObject[]).find(
                            (x) => (x.copy as JsonObject)?.name === 'monitoringMetricsPublisher',
                        )!;
                        delete r.copy;
                        props(r).principalId = "[parameters('appPrincipalId')]";
                        r.name = jsonText(r.name).replace(
                            "variables('principals')[copyIndex()].id",
                            "parameters('appPrincipalId')",
                        );
                    }),
                /Monitoring Metrics Publisher on applicationInsights is not granted to every principal/,
            ],
            [
                'the deploying user dropped',
                appRoleProblems,
                (m) => m.withModule('rbac', (d) => (passedParameters(d).deployerPrincipalId!.value = '')),
                /does not include the deploying user/,
            ],
            [
                'shared key access allowed',
                localAuthProblems,
                appAccount((p) => (p.allowSharedKeyAccess = true)),
                /allowSharedKeyAccess should be false/,
            ],
            [
                'shared key access left to the default',
                localAuthProblems,
                appAccount((p) => delete p.allowSharedKeyAccess),
                /allowSharedKeyAccess should be false/,
            ],
            [
                'public network access fixed instead of a parameter',
                localAuthProblems,
                appAccount((p) => (p.publicNetworkAccess = 'Enabled')),
                /publicNetworkAccess should come from its parameter/,
            ],
            [
                'Service Bus SAS keys enabled',
                localAuthProblems,
                bus('Microsoft.ServiceBus/namespaces', (r) => (props(r).disableLocalAuth = false)),
                /service-bus\.bicep: disableLocalAuth/,
            ],
            [
                'Application Insights keys enabled',
                localAuthProblems,
                (m) =>
                    m.withResource(
                        ['monitoring'],
                        'Microsoft.Insights/components',
                        (r) => (props(r).DisableLocalAuth = false),
                    ),
                /Application Insights DisableLocalAuth/,
            ],
            [
                'storage accepting TLS 1.0',
                transportProblems,
                appAccount((p) => (p.minimumTlsVersion = 'TLS1_0')),
                /minimumTlsVersion should be TLS1_2/,
            ],
            [
                'Service Bus accepting TLS 1.0',
                transportProblems,
                bus('Microsoft.ServiceBus/namespaces', (r) => (props(r).minimumTlsVersion = '1.0')),
                /service-bus\.bicep: minimumTlsVersion/,
            ],
            [
                'the app serving plain HTTP',
                transportProblems,
                site((r) => (props(r).httpsOnly = false)),
                /httpsOnly should be true/,
            ],
            [
                'the app accepting TLS 1.0',
                transportProblems,
                site((r) => ((props(r).siteConfig as JsonObject).minTlsVersion = '1.0')),
                /siteConfig\.minTlsVersion should be 1\.2/,
            ],
            [
                'FTP left on',
                transportProblems,
                site((r) => ((props(r).siteConfig as JsonObject).ftpsState = 'FtpsOnly')),
                /ftpsState/,
            ],
            [
                'the command queue without sessions',
                serviceBusProblems,
                bus(
                    'Microsoft.ServiceBus/namespaces/queues',
                    (r) => (props(r).requiresSession = false),
                    nameMentions('commandsQueueName'),
                ),
                /provider-commands: requiresSession should be true/,
            ],
            [
                'the event topic without duplicate detection',
                serviceBusProblems,
                bus('Microsoft.ServiceBus/namespaces/topics', (r) => delete props(r).requiresDuplicateDetection),
                /provider-events: requiresDuplicateDetection/,
            ],
            [
                'the rejected-commands queue removed',
                serviceBusProblems,
                (m) => m.withModuleTemplate(['serviceBus'], withoutResource(nameMentions('rejectedCommandsQueueName'))),
                /no provider-commands-rejected queue/,
            ],
            [
                'the Basic tier allowed',
                serviceBusProblems,
                (m) =>
                    m.withModuleTemplate(['serviceBus'], (t) => {
                        const sku = (t.parameters as JsonObject).skuName as JsonObject;
                        sku.allowedValues = ['Basic', ...(sku.allowedValues as Json[])];
                    }),
                /Basic has no topics or sessions/,
            ],
            [
                'a site subscription that keeps the catch-all rule',
                serviceBusProblems,
                (m) =>
                    m.withModuleTemplate([jsonText(m.module('providerSite').resource!.name)], (t) => {
                        const rule = (t.resources as JsonObject[]).find((r) => jsonText(r.type).endsWith('/rules'))!;
                        rule.name = jsonText(rule.name).replace("'$Default'", "'site-filter'");
                    }),
                /replace \$Default/,
            ],
            [
                'the failover container removed',
                containerProblems,
                (m) =>
                    m.withTemplate((t) => {
                        const vars = t.variables as JsonObject;
                        vars.replicaContainers = (vars.replicaContainers as Json[]).filter((c) => c !== 'failover');
                    }),
                /no container failover/,
            ],
            [
                'a connection string in an app setting',
                secretSettingProblems,
                setting((s) => (s.LEGACY = 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=abc')),
                /app setting LEGACY .* carries a secret/,
            ],
            [
                'listKeys in an app setting',
                secretSettingProblems,
                setting(
                    (s) =>
                        (s.BUS_KEY =
                            "[listKeys(resourceId('Microsoft.ServiceBus/namespaces/AuthorizationRules', 'sb', 'root'), '2022-10-01-preview').primaryKey]"),
                ),
                /app setting BUS_KEY[\s\S]*reads or embeds keys \(listKeys\(\)/,
            ],
            [
                'Application Insights without Entra authentication',
                secretSettingProblems,
                setting((s) => delete s.APPLICATIONINSIGHTS_AUTHENTICATION_STRING),
                /without Entra ID authentication/,
            ],
            [
                'settings written inline, bypassing the checked list',
                secretSettingProblems,
                site((r) => ((props(r).siteConfig as JsonObject).appSettings = [])),
                /inline siteConfig\.appSettings/,
            ],
            [
                'the Service Bus namespace setting removed',
                appSettingCoverageProblems,
                setting((s) => delete s.PROVIDER_BUS__fullyQualifiedNamespace),
                /app setting PROVIDER_BUS__fullyQualifiedNamespace is not set/,
            ],
            [
                'MERGE_CONCURRENCY removed',
                appSettingCoverageProblems,
                setting((s) => delete s.MERGE_CONCURRENCY),
                /app setting MERGE_CONCURRENCY is not set/,
            ],
            [
                'UPLOAD_GRANT_TTL_MINUTES removed',
                appSettingCoverageProblems,
                setting((s) => delete s.UPLOAD_GRANT_TTL_MINUTES),
                /app setting UPLOAD_GRANT_TTL_MINUTES is not set/,
            ],
            [
                'a storage connection without managed identity',
                appSettingCoverageProblems,
                setting((s) => delete s.REPLICA_STORAGE__credential),
                /REPLICA_STORAGE__credential should be managedidentity/,
            ],
            [
                'a storage connection given as a connection string',
                appSettingCoverageProblems,
                setting((s) => (s.AzureWebJobsStorage = 'UseDevelopmentStorage=true')),
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
                setting((s) => (s.FUNCTIONS_WORKER_RUNTIME = 'node')),
                /FUNCTIONS_WORKER_RUNTIME must not be an app setting/,
            ],
            [
                'the Contributor role on the failover resource group removed',
                failoverAccessProblems,
                (m) =>
                    m.withModuleTemplate(
                        ['failoverAccess'],
                        withoutResource(() => true),
                    ),
                /expected one Contributor assignment for the app identity on its resource group, found 0/,
            ],
            [
                'the failover role granted in one resource group while VMs go to another',
                failoverAccessProblems,
                setting((s) => (s.FAILOVER_RESOURCE_GROUP = 'rg-vms')),
                /FAILOVER_RESOURCE_GROUP is not the resource group failoverAccess grants on \('rg-\$\{environmentName\}'\)/,
            ],
            [
                'failover running as another identity than the one granted',
                failoverAccessProblems,
                setting((s) => delete s.FAILOVER_IDENTITY_CLIENT_ID),
                /FAILOVER_IDENTITY_CLIENT_ID should be the app identity's client id/,
            ],
            [
                'events of every blob, not only .hrl logs',
                mergeTriggerProblems,
                eventSubscription((p) => delete (p.filter as JsonObject).subjectEndsWith),
                /subjectEndsWith should be \.hrl/,
            ],
            [
                'events of another container',
                mergeTriggerProblems,
                eventSubscription(
                    (p) =>
                        ((p.filter as JsonObject).subjectBeginsWith =
                            '/blobServices/default/containers/replicas/blobs/'),
                ),
                /subjectBeginsWith should select the replica-logs container/,
            ],
            [
                'a webhook instead of the queue',
                mergeTriggerProblems,
                eventSubscription((p) => {
                    delete p.deliveryWithResourceIdentity;
                    p.destination = {
                        endpointType: 'WebHook',
                        properties: { endpointUrl: 'https://func/runtime/webhooks/blobs' },
                    };
                }),
                /delivers without an identity[\s\S]*should deliver to a Storage queue[\s\S]*still has a webhook/,
            ],
            [
                'events delivered to another queue',
                mergeTriggerProblems,
                eventSubscription((p) => (props(delivery(p)).queueName = 'merges')),
                /should deliver to queue replica-log-events/,
            ],
            [
                'queued events that expire',
                mergeTriggerProblems,
                eventSubscription((p) => delete props(delivery(p)).queueMessageTimeToLiveInSeconds),
                /never expire/,
            ],
            [
                'events dropped instead of dead-lettered',
                mergeTriggerProblems,
                eventSubscription((p) => delete p.deadLetterWithResourceIdentity),
                /dead-lettered to replica-logs-deadletter/,
            ],
            [
                'no retry policy',
                mergeTriggerProblems,
                eventSubscription((p) => delete p.retryPolicy),
                /retryPolicy\.maxDeliveryAttempts missing/,
            ],
            [
                'the topic identity without the right to send to the queue',
                mergeTriggerProblems,
                (m) => m.withModuleTemplate(['replicaEvents'], withoutResource(nameMentions('queueServices/queues'))),
                /needs Storage Queue Data Message Sender on replica-log-events/,
            ],
            [
                'the queue not created',
                mergeTriggerProblems,
                (m) => m.withModule('replicaStorage', (d) => (passedParameters(d).queues!.value = [])),
                /replica storage has no queue replica-log-events/,
            ],
            [
                'the queue connection of the trigger missing',
                mergeTriggerProblems,
                setting((s) => delete s.REPLICA_STORAGE__queueServiceUri),
                /REPLICA_STORAGE__queueServiceUri should be the replica account's queue endpoint/,
            ],
            [
                'a post-deploy hook left in azure.yaml',
                mergeTriggerProblems,
                (m) =>
                    m.withText(
                        'azure.yaml',
                        (t) =>
                            `${t}hooks:\n    postdeploy:\n        posix:\n            run: ./scripts/postdeploy.sh\n`,
                    ),
                /a postdeploy hook remains/,
            ],
            [
                'the package built remotely from the whole repository',
                azureYamlProblems,
                (m) => m.withText('azure.yaml', once('remoteBuild: false', 'remoteBuild: true')),
                /without a remote build/,
            ],
            [
                'the job failure alert removed',
                alertProblems,
                (m) =>
                    m.withModuleTemplate(['alerts'], (t) => {
                        const json = JSON.stringify(t).replace("'JobFailed'", "'JobCompleted'");
                        Object.assign(t, JSON.parse(json));
                    }),
                /no alert when a job failed/,
            ],
            [
                'alerts nobody receives',
                alertProblems,
                (m) =>
                    m.withResource(
                        ['alerts'],
                        'Microsoft.Insights/actionGroups',
                        (r) => (props(r).emailReceivers = []),
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
            expect(check(mutate(model)).join('\n')).toMatch(expected);
        });
    });
});
