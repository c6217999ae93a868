import { load as loadYaml } from 'js-yaml';
import { ArmResourceId, ArmValue, isArmObject, jsonAt, JsonObject } from '../../support/armTemplate';
import { ROLE_ASSIGNMENT, nameText, readGrant, text } from './checks';
import { InfraModel } from './infraModel';

/**
 * Checks on what the app gets from the deployment: its settings, the trigger path of the merge, failover's rights
 * and the alerts. Same conventions as ./checks.ts.
 */

/** The app settings main.bicep gives the function app, evaluated. */
export function appSettings(model: InfraModel): Record<string, ArmValue> {
    const settings = model.module('functionApp').param('appSettings');
    return isArmObject(settings) ? settings : {};
}

const SECRET_PATTERN =
    /listKeys|listConnectionStrings|connectionString|AccountKey|SharedAccessKey|primaryKey|secondaryKey|DefaultEndpointsProtocol|\bsig=/i;

/** No app setting carries a key or connection string (Application Insights' locator only with Entra auth). */
export function secretSettingProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const settings = appSettings(model);
    if (Object.keys(settings).length === 0) problems.push('main.bicep: no app settings found for functionApp');
    for (const [key, value] of Object.entries(settings)) {
        if (key === 'APPLICATIONINSIGHTS_CONNECTION_STRING') continue;
        if (SECRET_PATTERN.test(key) || SECRET_PATTERN.test(text(value)))
            problems.push(`app setting ${key} = ${text(value)} carries a secret`);
    }
    if ('APPLICATIONINSIGHTS_CONNECTION_STRING' in settings) {
        if (
            text(settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING) !==
            "'ClientId=${appIdentity.outputs.clientId};Authorization=AAD'"
        ) {
            problems.push(
                'APPLICATIONINSIGHTS_CONNECTION_STRING is set without Entra ID authentication (ClientId=...;Authorization=AAD)',
            );
        }
        if (
            text(settings.APPLICATIONINSIGHTS_CONNECTION_STRING) !==
            'monitoring.outputs.applicationInsightsConnectionString'
        )
            problems.push(
                'APPLICATIONINSIGHTS_CONNECTION_STRING should be the Application Insights locator, nothing else',
            );
    }
    // Nothing in the whole deployment fetches or embeds keys (list*() calls, key literals).
    const compiled = JSON.stringify(model.main.template);
    const uses = [...new Set(compiled.match(/\blist\w*\(/g) ?? [])];
    if (uses.length > 0 || /AccountKey=|SharedAccessKey/.test(compiled))
        problems.push(`the deployment reads or embeds keys (${uses.join(', ') || 'key literal'})`);
    // The settings reach the site through one appsettings resource built from the param, nothing inline.
    const config = model
        .module('functionApp')
        .resourcesOfType('Microsoft.Web/sites/config')
        .find((r) => nameText(r.get('name')).endsWith('/appsettings'));
    if (jsonAt(config?.json, 'properties') !== "[parameters('appSettings')]")
        problems.push('function-app.bicep: appsettings should be exactly the appSettings param');
    const site = model.module('functionApp').resourcesOfType('Microsoft.Web/sites')[0];
    if (site?.get('properties.siteConfig.appSettings') !== undefined)
        problems.push('function-app.bicep: inline siteConfig.appSettings bypasses the checked list');
    return problems;
}

const IDENTITY_LOCATORS = ['accountName', 'fullyQualifiedNamespace', 'blobServiceUri', 'queueServiceUri', 'serviceUri'];

/**
 * Every setting the app reads (the keys of local.settings.sample.json) is set in Azure: connections in identity
 * form (`<Name>__accountName` or `__fullyQualifiedNamespace`, `__credential=managedidentity`, `__clientId`),
 * the rest by value. FUNCTIONS_WORKER_RUNTIME is Flex Consumption's functionAppConfig.runtime instead.
 */
export function appSettingCoverageProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const settings = appSettings(model);
    const sample = (JSON.parse(model.text('local.settings.sample.json')) as { Values: Record<string, string> }).Values;
    const keys = Object.keys(sample);
    for (const key of keys) {
        if (key === 'FUNCTIONS_WORKER_RUNTIME') {
            if (key in settings)
                problems.push('FUNCTIONS_WORKER_RUNTIME must not be an app setting on Flex Consumption');
            continue;
        }
        if (key.includes('__')) {
            if (!(key in settings)) problems.push(`app setting ${key} is not set`);
            continue;
        }
        const sampleValue = sample[key] ?? '';
        const isConnection =
            /UseDevelopmentStorage=true|AccountKey=|Endpoint=/i.test(sampleValue) ||
            keys.some((k) => k.startsWith(`${key}__`));
        if (!isConnection) {
            if (!(key in settings) || settings[key] === '') problems.push(`app setting ${key} is not set`);
            continue;
        }
        if (key in settings)
            problems.push(`connection ${key} is set as a connection string; use ${key}__* identity settings`);
        if (!IDENTITY_LOCATORS.some((suffix) => `${key}__${suffix}` in settings))
            problems.push(
                `connection ${key} has no ${key}__accountName / __fullyQualifiedNamespace / __blobServiceUri`,
            );
        if (settings[`${key}__credential`] !== 'managedidentity')
            problems.push(`connection ${key}: ${key}__credential should be managedidentity`);
        if (text(settings[`${key}__clientId`]) !== 'appIdentity.outputs.clientId')
            problems.push(`connection ${key}: ${key}__clientId should be the app identity's client id`);
    }
    return problems;
}

/** Settings the code reads that deliberately stay out of local.settings.sample.json and Azure. */
export const SETTINGS_NOT_DEPLOYED: Readonly<Record<string, string>> = {
    STATE_TABLE_PREFIX: 'test-only: isolates state tables of parallel tests in one Azurite',
    WEBSITE_INSTANCE_ID: 'set by the App Service platform',
};

const SETTING_READ = /\b(?:optionalSetting|requireSetting|integerSetting)\(\s*'([A-Za-z0-9_]+)'/g;

/**
 * Every app setting the code reads by name (optionalSetting / requireSetting / integerSetting) is in
 * local.settings.sample.json, so appSettingCoverageProblems sees it and Azure gets it too.
 */
export function codeSettingProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const sample = (JSON.parse(model.text('local.settings.sample.json')) as { Values: Record<string, string> }).Values;
    const read = new Map<string, string>();
    for (const rel of model.appSourcePaths) {
        for (const match of model.text(rel).matchAll(SETTING_READ)) if (!read.has(match[1]!)) read.set(match[1]!, rel);
    }
    if (read.size === 0) problems.push('no setting reads found in shared/, functions/, orchestrations/');
    for (const [name, rel] of read) {
        if (!(name in sample) && !(name in SETTINGS_NOT_DEPLOYED))
            problems.push(`${rel} reads ${name}, which local.settings.sample.json does not list`);
    }
    return problems;
}

/**
 * Failover creates VMs where FAILOVER_SUBSCRIPTION_ID / FAILOVER_RESOURCE_GROUP point, as the app identity
 * (FAILOVER_IDENTITY_CLIENT_ID), out of the replica account (FAILOVER_STORAGE_ACCOUNT_ID): the identity needs
 * Contributor on exactly that resource group.
 */
export function failoverAccessProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const settings = appSettings(model);
    const access = model.module('failoverAccess');
    const deployedTo = {
        subscription: text(model.main.evaluate(access.resource?.subscriptionId ?? '')),
        group: text(model.main.evaluate(access.resource?.resourceGroup ?? '')),
    };
    if (!deployedTo.subscription || !deployedTo.group)
        problems.push('main.bicep: failoverAccess should be scoped resourceGroup(<subscription>, <group>)');
    if (text(settings.FAILOVER_SUBSCRIPTION_ID) !== deployedTo.subscription)
        problems.push(
            `FAILOVER_SUBSCRIPTION_ID is not the subscription failoverAccess grants in (${deployedTo.subscription})`,
        );
    if (text(settings.FAILOVER_RESOURCE_GROUP) !== deployedTo.group)
        problems.push(
            `FAILOVER_RESOURCE_GROUP is not the resource group failoverAccess grants on (${deployedTo.group})`,
        );
    if (text(access.param('appPrincipalId')) !== 'appIdentity.outputs.principalId')
        problems.push('main.bicep: failoverAccess.appPrincipalId should be the app identity');
    if (text(settings.FAILOVER_IDENTITY_CLIENT_ID) !== 'appIdentity.outputs.clientId')
        problems.push("FAILOVER_IDENTITY_CLIENT_ID should be the app identity's client id");
    if (text(settings.FAILOVER_STORAGE_ACCOUNT_ID) !== 'replicaStorage.outputs.id')
        problems.push('FAILOVER_STORAGE_ACCOUNT_ID should be the replica storage account id');
    const contributor = access
        .resourcesOfType(ROLE_ASSIGNMENT)
        .map((r) => readGrant(r, problems))
        .filter(
            (g) =>
                g.role === 'Contributor' &&
                g.scope === 'resourceGroup()' &&
                g.principal === 'appIdentity.outputs.principalId',
        );
    if (contributor.length !== 1) {
        problems.push(
            `failover-access.bicep: expected one Contributor assignment for the app identity on its resource group, found ${contributor.length}`,
        );
    }
    return problems;
}

/** The merge trigger path (docs/deploy.md, docs/merge.md): names shared by infra and the code. */
export const MERGE_TRIGGER = {
    logsContainer: 'replica-logs',
    eventsQueue: 'replica-log-events',
    deadLetterContainer: 'replica-logs-deadletter',
    connection: 'REPLICA_STORAGE',
};

const REPLICA_ACCOUNT = 'Microsoft.Storage/storageAccounts/replicaStorage.outputs.name';

/**
 * Event Grid's system topic on the replica account delivers BlobCreated of `.hrl` blobs in replica-logs to the
 * Storage queue replica-log-events of the same account, with its own identity (Queue Data Message Sender on that
 * queue), dead-lettering with the same identity; the app reads the queue with its identity (REPLICA_STORAGE).
 * No webhook and no post-deploy step remain.
 */
export function mergeTriggerProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const events = model.module('replicaEvents');
    const topic = events.resourcesOfType('Microsoft.EventGrid/systemTopics')[0];
    if (!topic) return ['replica-events.bicep: no Event Grid system topic'];
    const source = topic.get('properties.source');
    if (text(source) !== REPLICA_ACCOUNT || topic.get('properties.topicType') !== 'Microsoft.Storage.StorageAccounts')
        problems.push(`system topic: source should be the replica storage account, is ${text(source)}`);
    if (topic.get('identity.type') !== 'SystemAssigned')
        problems.push('system topic: needs a system-assigned identity (the only kind a storage firewall lets through)');

    const replicaQueues = model.module('replicaStorage').param('queues');
    if (!Array.isArray(replicaQueues) || !replicaQueues.includes(MERGE_TRIGGER.eventsQueue))
        problems.push(`main.bicep: replica storage has no queue ${MERGE_TRIGGER.eventsQueue}`);

    const subscriptions = model.main.allResources.filter(
        (r) => r.type === 'Microsoft.EventGrid/systemTopics/eventSubscriptions',
    );
    if (subscriptions.length !== 1)
        problems.push(`expected one Event Grid subscription, found ${subscriptions.length}`);
    const subscription = subscriptions[0];
    const at = (path: string) => subscription?.get(`properties.${path}`);
    const included = at('filter.includedEventTypes');
    if (JSON.stringify(included) !== '["Microsoft.Storage.BlobCreated"]')
        problems.push('subscription: should include only Microsoft.Storage.BlobCreated');
    if (at('filter.subjectBeginsWith') !== `/blobServices/default/containers/${MERGE_TRIGGER.logsContainer}/blobs/`)
        problems.push(
            `subscription: subjectBeginsWith should select the ${MERGE_TRIGGER.logsContainer} container, is ${text(at('filter.subjectBeginsWith'))}`,
        );
    if (at('filter.subjectEndsWith') !== '.hrl') problems.push('subscription: subjectEndsWith should be .hrl');
    if (at('destination') !== undefined)
        problems.push('subscription: delivers without an identity (destination); use deliveryWithResourceIdentity');
    const delivery = 'deliveryWithResourceIdentity';
    if (at(`${delivery}.identity.type`) !== 'SystemAssigned')
        problems.push("subscription: should deliver with the system topic's identity");
    if (at(`${delivery}.destination.endpointType`) !== 'StorageQueue')
        problems.push(
            `subscription: should deliver to a Storage queue, not ${text(at(`${delivery}.destination.endpointType`))}`,
        );
    if (text(at(`${delivery}.destination.properties.resourceId`)) !== REPLICA_ACCOUNT)
        problems.push('subscription: the queue should be in the replica storage account');
    if (at(`${delivery}.destination.properties.queueName`) !== MERGE_TRIGGER.eventsQueue)
        problems.push(`subscription: should deliver to queue ${MERGE_TRIGGER.eventsQueue}`);
    if (at(`${delivery}.destination.properties.queueMessageTimeToLiveInSeconds`) !== -1)
        problems.push('subscription: queued events should never expire (queueMessageTimeToLiveInSeconds -1)');
    for (const key of ['maxDeliveryAttempts', 'eventTimeToLiveInMinutes']) {
        if (typeof at(`retryPolicy.${key}`) !== 'number') problems.push(`subscription: retryPolicy.${key} missing`);
    }
    const deadLetter = 'deadLetterWithResourceIdentity';
    if (
        at(`${deadLetter}.deadLetterDestination.endpointType`) !== 'StorageBlob' ||
        at(`${deadLetter}.deadLetterDestination.properties.blobContainerName`) !== MERGE_TRIGGER.deadLetterContainer ||
        text(at(`${deadLetter}.deadLetterDestination.properties.resourceId`)) !== REPLICA_ACCOUNT
    ) {
        problems.push(
            `subscription: undeliverable events should be dead-lettered to ${MERGE_TRIGGER.deadLetterContainer}`,
        );
    }
    if (at(`${deadLetter}.identity.type`) !== 'SystemAssigned')
        problems.push("subscription: dead-lettering should use the system topic's identity (storage has no keys)");

    // The topic's identity may send to that queue and write dead letters, nothing more; the subscription waits for both.
    const topicId = new ArmResourceId('Microsoft.EventGrid/systemTopics', [topic.get('name') ?? null]);
    const topicPrincipal = `reference(${topicId.text}).identity.principalId`;
    const grants = events.resourcesOfType(ROLE_ASSIGNMENT).map((r) => readGrant(r, problems));
    const queueScope = `Microsoft.Storage/storageAccounts/queueServices/queues/replicaStorage.outputs.name/default/${MERGE_TRIGGER.eventsQueue}`;
    const sender = grants.filter(
        (g) => g.role === 'Storage Queue Data Message Sender' && g.principal === topicPrincipal,
    );
    if (sender.length !== 1 || ![queueScope, REPLICA_ACCOUNT].includes(sender[0]!.scope))
        problems.push(
            `replica-events.bicep: the system topic needs Storage Queue Data Message Sender on ${MERGE_TRIGGER.eventsQueue}`,
        );
    const writer = grants.filter((g) => g.role === 'Storage Blob Data Contributor' && g.principal === topicPrincipal);
    if (writer.length !== 1 || !writer[0]!.scope.endsWith(`/default/${MERGE_TRIGGER.deadLetterContainer}`))
        problems.push(
            `replica-events.bicep: the system topic needs Storage Blob Data Contributor on ${MERGE_TRIGGER.deadLetterContainer} only`,
        );
    const dependsOn = JSON.stringify(subscription?.json.dependsOn ?? []);
    if ((dependsOn.match(/Microsoft\.Authorization\/roleAssignments/g) ?? []).length < 2)
        problems.push('subscription: should depend on the topic identity role assignments');

    // The app's side: an identity-based queue connection on the replica account.
    const settings = appSettings(model);
    const connection = MERGE_TRIGGER.connection;
    if (text(settings[`${connection}__queueServiceUri`]) !== 'replicaStorage.outputs.queueEndpoint')
        problems.push(`app setting ${connection}__queueServiceUri should be the replica account's queue endpoint`);

    // Nothing is left to do after deployment: no webhook, no post-deploy hook.
    const yaml = loadYaml(model.text('azure.yaml')) as { hooks?: Record<string, unknown> };
    if (yaml.hooks && 'postdeploy' in yaml.hooks)
        problems.push('azure.yaml: a postdeploy hook remains; the subscription is in main.bicep');
    // (An Event Grid destination of type WebHook; App Service authentication's excluded /runtime/webhooks/
    // paths are not one.)
    if (/"endpointType":"WebHook"/i.test(JSON.stringify(model.main.template)))
        problems.push('the deployment still has a webhook destination');
    return problems;
}

interface AzureYaml {
    services?: Record<
        string,
        { host?: string; language?: string; project?: string; dist?: string; remoteBuild?: boolean }
    >;
    infra?: { provider?: string; path?: string };
}

/** azure.yaml deploys the function app service main.bicep tags, from the package that holds only what runs. */
export function azureYamlProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const yaml = loadYaml(model.text('azure.yaml')) as AzureYaml;
    const serviceName = model.module('functionApp').param('serviceName');
    const service = typeof serviceName === 'string' ? yaml.services?.[serviceName] : undefined;
    if (!service || service.host !== 'function' || service.language !== 'ts')
        problems.push(`azure.yaml: no ts function service named ${text(serviceName)} (main.bicep's azd-service-name)`);
    if (yaml.infra?.path !== 'infra') problems.push('azure.yaml: infra.path should be infra');
    if (service?.dist !== '.deploy' || service.remoteBuild !== false)
        problems.push(
            'azure.yaml: the service should deploy .deploy (built by infra/tools/package.sh) without a remote build',
        );
    if (!/prepackage:[\s\S]*run: \.\/infra\/tools\/package\.sh/.test(model.text('azure.yaml')))
        problems.push('azure.yaml: the prepackage hook should run infra/tools/package.sh');
    return problems;
}

/** Telemetry names the alert queries rely on: metric names and trace event / health values. */
export function alertTelemetryNames(model: InfraModel): string[] {
    const names = new Set<string>();
    for (const rule of model.module('alerts').resourcesOfType('Microsoft.Insights/scheduledQueryRules')) {
        const criteria = rule.get('properties.criteria.allOf');
        for (const criterion of Array.isArray(criteria) ? criteria : []) {
            const query = isArmObject(criterion) ? criterion.query : undefined;
            if (typeof query !== 'string') continue;
            for (const m of query.matchAll(/(?:name|(?:customDimensions|e)\.\w+\)?)\s*==\s*'([^']+)'/g))
                names.add(m[1]!);
        }
    }
    return [...names].sort();
}

/** Alerts for a Critical item, RPO over threshold and failed jobs, each notifying the e-mail action group. */
export function alertProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const alerts = model.withParameters({ alertEmail: 'ops@example.com' }).module('alerts');
    const rules = alerts.resourcesOfType('Microsoft.Insights/scheduledQueryRules');
    const queries = rules.flatMap((r) => {
        const criteria = r.get('properties.criteria.allOf');
        return (Array.isArray(criteria) ? criteria : [])
            .map((c) => (isArmObject(c) ? c.query : undefined))
            .filter((q) => typeof q === 'string');
    });
    const required: Record<string, RegExp> = {
        'a replicated item became Critical': /'ReplicationHealthChanged'[\s\S]*'Critical'/,
        'RPO over threshold': /'ReplicationRpoSeconds'/,
        'a job failed': /'JobFailed'/,
    };
    for (const [what, pattern] of Object.entries(required)) {
        if (!queries.some((q) => pattern.test(q))) problems.push(`alerts.bicep: no alert when ${what}`);
    }
    const group = alerts.resourcesOfType('Microsoft.Insights/actionGroups')[0];
    if (!text(group?.get('properties.emailReceivers')).includes('emailAddress: ops@example.com'))
        problems.push('alerts.bicep: the action group does not e-mail alertEmail');
    for (const rule of rules) {
        const actionGroups = rule.get('properties.actions.actionGroups');
        if (
            !Array.isArray(actionGroups) ||
            actionGroups.length !== 1 ||
            text(actionGroups[0]) !== `Microsoft.Insights/actionGroups/${text(group?.get('name'))}`
        )
            problems.push(`${rule.where}: does not notify the action group`);
        if (text(rule.get('properties.scopes')) !== '[monitoring.outputs.applicationInsightsId]')
            problems.push(`${rule.where}: should query Application Insights`);
    }
    const rpo = rules.find((r) => /ReplicationRpoSeconds/.test(JSON.stringify(r.json)));
    if (rpo && !JSON.stringify(rpo.json).includes(`"threshold":"[parameters('rpoThresholdSeconds')]"`))
        problems.push('alerts.bicep: the RPO alert threshold should be the rpoThresholdSeconds param');
    if (model.module('alerts').passed('alertEmail') !== "[parameters('alertEmail')]")
        problems.push('main.bicep: alerts.alertEmail should be the alertEmail param');
    const docs = model.text('docs/deploy.md');
    for (const name of alertTelemetryNames(model)) {
        if (!docs.includes(name))
            problems.push(`docs/deploy.md does not document the telemetry name ${name} that an alert queries`);
    }
    return problems;
}

/**
 * What App Service authentication must let through unauthenticated, or the pipeline (and the console's sign-in
 * page) stops: the Durable extension's webhooks, Event Grid's webhook delivery, the liveness probe, the console.
 */
export const AUTH_EXCLUDED_PATHS = [
    '/runtime/webhooks/durabletask/*',
    '/runtime/webhooks/eventgrid',
    '/api/health',
    '/api/console/*',
];

/**
 * Operators sign in with Entra ID when an operator app registration is given: App Service authentication on
 * the app (401 for the unauthenticated, the platform's webhook paths excluded, no client secret) and the app in
 * its EntraId mode; without one, neither, and the API keeps function keys.
 */
export function operatorAuthProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const clientId = '11111111-2222-3333-4444-555555555555';
    const signedIn = model.withParameters({ operatorAppClientId: clientId });
    const authOf = (m: InfraModel) =>
        m
            .module('functionApp')
            .resourcesOfType('Microsoft.Web/sites/config')
            .find((r) => nameText(r.get('name')).endsWith('/authsettingsV2'));
    const auth = authOf(signedIn);
    if (!auth) return ['function-app.bicep: no authsettingsV2 resource (App Service authentication)'];
    // Deployed only with an operator app registration (a Bicep `if`: the resource's condition).
    if (auth.get('condition') !== true)
        problems.push(`authsettingsV2 with an operator app: condition is ${text(auth.get('condition'))}`);
    if (authOf(model)?.get('condition') !== false)
        problems.push('authsettingsV2 must not be deployed when operatorAppClientId is empty');
    const expect = (path: string, value: ArmValue) => {
        const got = auth.get(path);
        if (JSON.stringify(got) !== JSON.stringify(value))
            problems.push(`authsettingsV2 ${path} is ${text(got)}, expected ${JSON.stringify(value)}`);
    };
    expect('properties.platform.enabled', true);
    expect('properties.globalValidation.requireAuthentication', true);
    expect('properties.globalValidation.unauthenticatedClientAction', 'Return401');
    expect('properties.identityProviders.azureActiveDirectory.registration.clientId', clientId);
    if (
        auth.get('properties.identityProviders.azureActiveDirectory.registration.clientSecretSettingName') !== undefined
    )
        problems.push('App Service authentication must not need a client secret');
    const excluded = auth.get('properties.globalValidation.excludedPaths');
    for (const path of AUTH_EXCLUDED_PATHS) {
        if (!Array.isArray(excluded) || !excluded.includes(path))
            problems.push(`App Service authentication does not exclude ${path}: ${text(excluded)}`);
    }
    const audiences = auth.get('properties.identityProviders.azureActiveDirectory.validation.allowedAudiences');
    if (!Array.isArray(audiences) || !audiences.includes(`api://${clientId}`))
        problems.push(`the API's audience api://<client id> is not allowed: ${text(audiences)}`);
    if (appSettings(signedIn).API_AUTHENTICATION !== 'EntraId')
        problems.push(`with an operator app, API_AUTHENTICATION is ${text(appSettings(signedIn).API_AUTHENTICATION)}`);
    if (appSettings(model).API_AUTHENTICATION !== 'FunctionKey')
        problems.push(`without one, API_AUTHENTICATION is ${text(appSettings(model).API_AUTHENTICATION)}`);
    return problems;
}

/**
 * Recovery points nobody can delete early (docs/deploy.md "Points nobody can delete early"): the replicas container
 * has version-level immutability (so the app can lock each held point's snapshots), the account versioning it
 * needs, a lifecycle rule for the previous versions that versioning leaves, and the app is told which mode to set.
 */
export function immutabilityProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const replica = model.module('replicaStorage');
    const containers = replica.param('versionLevelImmutabilityContainers');
    // Passed as a conditional on recoveryPointImmutability: the evaluated array, or the expression naming it.
    // Bicep compiles a conditional module parameter into one if() over the whole {value} object, which the model
    // does not evaluate: read the deployment's own parameter expression then.
    const passed = JSON.stringify((replica.resource?.properties as JsonObject | undefined)?.parameters ?? {});
    const named =
        (Array.isArray(containers) && containers.includes('replicas')) ||
        /versionLevelImmutabilityContainers":"\[if\(equals\(parameters\('recoveryPointImmutability'\), 'None'\), createObject\('value', createArray\(\)\), createObject\('value', createArray\(variables\('replicasContainerName'\)\)\)\)\]/.test(
            passed,
        ) ||
        (!Array.isArray(containers) && /replicas/.test(text(containers)));
    if (!named) problems.push('main.bicep: the replicas container does not get version-level immutability');
    const created = replica.resourcesOfType('Microsoft.Storage/storageAccounts/blobServices/containers');
    if (!created.some((r) => JSON.stringify(r.json).includes('immutableStorageWithVersioning')))
        problems.push('storage-account.bicep: containers never enable immutableStorageWithVersioning');
    const service = replica.resourcesOfType('Microsoft.Storage/storageAccounts/blobServices')[0];
    if (!JSON.stringify(service?.json ?? {}).includes('isVersioningEnabled'))
        problems.push('storage-account.bicep: blob versioning (required by version-level immutability) is not set');
    if (replica.resourcesOfType('Microsoft.Storage/storageAccounts/managementPolicies').length === 0)
        problems.push('storage-account.bicep: no lifecycle rule deletes the previous versions versioning leaves');
    const mode = appSettings(model).RECOVERY_POINT_IMMUTABILITY;
    if (mode !== 'Locked')
        problems.push(`main.bicep: RECOVERY_POINT_IMMUTABILITY is ${JSON.stringify(mode)}; the default must be Locked`);
    return problems;
}
