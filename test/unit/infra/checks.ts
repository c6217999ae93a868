import { load as loadYaml } from 'js-yaml';
import { BicepExpr, BicepFile, BicepObject, BicepResource, BicepValue, sourceText, valueAt } from '../../support/bicep';
import { InfraModel } from './infraModel';

/**
 * What the deployment must guarantee, as checks over an {@link InfraModel}. Each returns the problems it finds
 * (empty: fine), phrased so that a failing test says what is missing and where.
 */

/** Built-in Azure role definition ids (the same in every tenant). */
export const BUILT_IN_ROLES: Readonly<Record<string, string>> = {
    'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
    'Storage Blob Data Contributor': 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
    'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
    'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
    'Storage Blob Delegator': 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a',
    'Azure Service Bus Data Sender': '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39',
    'Azure Service Bus Data Receiver': '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
    'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
    'Key Vault Crypto Service Encryption User': 'e147488a-f6f5-4113-8e2d-b22465e65bf6',
    Contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
};

const ROLE_NAME_BY_ID = new Map(Object.entries(BUILT_IN_ROLES).map(([name, id]) => [id, name]));

/** The app's data roles (rbac.bicep), each for the app identity and the deploying user. */
export const EXPECTED_APP_ROLES: ReadonlyArray<{ scope: string; role: string }> = [
    { scope: 'appStorage', role: 'Storage Blob Data Owner' },
    { scope: 'appStorage', role: 'Storage Queue Data Contributor' },
    { scope: 'appStorage', role: 'Storage Table Data Contributor' },
    { scope: 'replicaStorage', role: 'Storage Blob Data Owner' },
    { scope: 'replicaStorage', role: 'Storage Table Data Contributor' },
    { scope: 'replicaStorage', role: 'Storage Blob Delegator' },
    { scope: 'serviceBus', role: 'Azure Service Bus Data Sender' },
    { scope: 'serviceBus', role: 'Azure Service Bus Data Receiver' },
    { scope: 'applicationInsights', role: 'Monitoring Metrics Publisher' },
];

export const REPLICA_CONTAINERS = ['replica-logs', 'replicas', 'replica-logs-quarantine', 'failover'];
export const MERGE_FUNCTION = 'mergeReplicaLog';

const ROLE_ASSIGNMENT = 'Microsoft.Authorization/roleAssignments';

function isObject(value: BicepValue | undefined): value is BicepObject {
    return !!value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof BicepExpr);
}

function text(value: BicepValue | undefined): string {
    return sourceText(value);
}

function where(file: BicepFile, resource: { symbol: string; line: number }): string {
    return `${file.path.replace(/^.*?infra\//, 'infra/')}:${resource.line} ${resource.symbol}`;
}

/** Every Bicep file parses without ERROR or MISSING nodes. */
export function syntaxProblems(model: InfraModel): string[] {
    return model.bicepPaths.flatMap((rel) =>
        model.bicep(rel).errors.map((e) => `${rel}:${e.line}:${e.column} ${e.kind} ${JSON.stringify(e.text)}`),
    );
}

/**
 * Every module reference is a local file in infra/ (nothing to download), every param it passes is declared
 * there, and every param declared there without a default is passed.
 */
export function moduleProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    for (const rel of model.bicepPaths) {
        const file = model.bicep(rel);
        for (const module of file.modules) {
            const target = model.moduleFile(module);
            if (!target) {
                problems.push(
                    `${where(file, module)}: module path ${module.path} does not resolve to a file in infra/`,
                );
                continue;
            }
            for (const name of Object.keys(module.params)) {
                if (!target.params.has(name))
                    problems.push(`${where(file, module)}: passes ${name}, not a param of ${module.path}`);
            }
            for (const param of target.params.values()) {
                if (param.defaultValue === undefined && !(param.name in module.params)) {
                    problems.push(
                        `${where(file, module)}: does not pass required param ${param.name} of ${module.path}`,
                    );
                }
            }
        }
    }
    return problems;
}

/** main.parameters.json maps onto main.bicep's params, and azd supplies every param without a default. */
export function parameterFileProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const json = JSON.parse(model.text('infra/main.parameters.json')) as { parameters: Record<string, unknown> };
    for (const name of Object.keys(json.parameters)) {
        if (!model.main.params.has(name)) problems.push(`main.parameters.json sets ${name}, not a param of main.bicep`);
    }
    for (const param of model.main.params.values()) {
        if (param.defaultValue === undefined && !(param.name in json.parameters)) {
            problems.push(`main.bicep param ${param.name} has no default and main.parameters.json does not set it`);
        }
    }
    if (JSON.stringify(json.parameters.principalId) !== JSON.stringify({ value: '${AZURE_PRINCIPAL_ID}' })) {
        problems.push("main.parameters.json must pass azd's AZURE_PRINCIPAL_ID as principalId");
    }
    return problems;
}

interface RoleAssignmentInfo {
    file: BicepFile;
    resource: BicepResource;
    scope: string;
    role?: string;
    principal: string;
    principalType: string;
}

/** Reads one role assignment; problems with its shape (role id, name, principal type) go to `problems`. */
function readRoleAssignment(file: BicepFile, resource: BicepResource, problems: string[]): RoleAssignmentInfo {
    const at = where(file, resource);
    const scope = text(resource.body.scope);
    const properties = resource.body.properties;
    const principal = text(valueAt(properties, 'principalId'));
    const principalType = text(file.evaluate(valueAt(properties, 'principalType')));
    const info: RoleAssignmentInfo = { file, resource, scope, principal, principalType };
    if (!scope) problems.push(`${at}: no scope (a role assignment at resource-group scope grants too much)`);
    if (!principal) problems.push(`${at}: no principalId`);
    if (!principalType) problems.push(`${at}: no principalType (needed for identities that were just created)`);

    const roleDefinition = valueAt(properties, 'roleDefinitionId');
    const call = roleDefinition instanceof BicepExpr ? roleDefinition.call : undefined;
    const roleIdArg = call?.args.at(-1);
    const roleId = file.evaluate(roleIdArg);
    if (
        !call ||
        !['subscriptionResourceId', 'resourceId'].includes(call.name) ||
        call.args[0] !== 'Microsoft.Authorization/roleDefinitions'
    ) {
        problems.push(
            `${at}: roleDefinitionId should be subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <id>)`,
        );
    } else if (typeof roleId !== 'string' || !ROLE_NAME_BY_ID.has(roleId)) {
        problems.push(`${at}: role definition ${text(roleIdArg)} is not a known built-in role id (${text(roleId)})`);
    } else {
        info.role = ROLE_NAME_BY_ID.get(roleId);
    }

    const name = resource.body.name;
    const guid = name instanceof BicepExpr ? name.call : undefined;
    if (!guid || guid.name !== 'guid' || guid.args.length !== 3) {
        problems.push(`${at}: name should be guid(scope.id, principal, role), got ${text(name)}`);
        return info;
    }
    const [scopeArg, principalArg, roleArg] = guid.args.map(text);
    if (scopeArg !== `${scope}.id`) problems.push(`${at}: guid() starts with ${scopeArg}, not the scope ${scope}.id`);
    // A resource's own identity may be named by the resource id, which is known before the identity exists.
    const identityOwner = /^(\w+)\.identity\./.exec(principal)?.[1];
    if (principalArg !== principal && principalArg !== `${identityOwner}.id`) {
        problems.push(`${at}: guid() names principal ${principalArg}, but the assignment is for ${principal}`);
    }
    if (file.evaluate(guid.args[2]) !== roleId) {
        problems.push(`${at}: guid() names role ${roleArg}, but the assignment grants ${text(roleIdArg)}`);
    }
    return info;
}

/** Every role assignment in every file: a built-in role, scoped, named guid(scope, principal, role). */
export function allRoleAssignments(model: InfraModel, problems: string[]): RoleAssignmentInfo[] {
    return model.bicepPaths.flatMap((rel) => {
        const file = model.bicep(rel);
        return file.resourcesOfType(ROLE_ASSIGNMENT).map((r) => readRoleAssignment(file, r, problems));
    });
}

export function roleAssignmentShapeProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    allRoleAssignments(model, problems);
    return problems;
}

/**
 * The app identity and the deploying user get each data role of {@link EXPECTED_APP_ROLES}, on the resources
 * main.bicep wires them to, once per role.
 */
export function appRoleProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const rbac = model.mainModuleFile('rbac');
    const assignments = rbac.resourcesOfType(ROLE_ASSIGNMENT).map((r) => readRoleAssignment(rbac, r, []));
    for (const expected of EXPECTED_APP_ROLES) {
        const found = assignments.filter((a) => a.scope === expected.scope && a.role === expected.role);
        if (found.length !== 1) {
            problems.push(
                `rbac.bicep: expected one ${expected.role} assignment on ${expected.scope}, found ${found.length}`,
            );
            continue;
        }
        const assignment = found[0]!;
        const loop = assignment.resource.loop;
        if (!loop || text(loop.over) !== 'principals' || assignment.principal !== `${loop.item}.id`) {
            problems.push(`rbac.bicep: ${expected.role} on ${expected.scope} is not granted to every principal`);
        }
    }
    const principals = text(rbac.vars.get('principals'));
    if (!/id: appPrincipalId\s+type: 'ServicePrincipal'/.test(principals)) {
        problems.push('rbac.bicep: principals does not include the app identity as a ServicePrincipal');
    }
    if (!/id: deployerPrincipalId\s+type: deployerPrincipalType/.test(principals)) {
        problems.push('rbac.bicep: principals does not include the deploying user');
    }
    if (rbac.params.get('deployerPrincipalType')?.defaultValue !== 'User') {
        problems.push('rbac.bicep: deployerPrincipalType should default to User');
    }

    const scopes: Record<string, [string, string, string]> = {
        appStorage: ['Microsoft.Storage/storageAccounts', 'appStorageAccountName', 'appStorage.outputs.name'],
        replicaStorage: [
            'Microsoft.Storage/storageAccounts',
            'replicaStorageAccountName',
            'replicaStorage.outputs.name',
        ],
        serviceBus: ['Microsoft.ServiceBus/namespaces', 'serviceBusNamespaceName', 'serviceBus.outputs.name'],
        applicationInsights: [
            'Microsoft.Insights/components',
            'applicationInsightsName',
            'monitoring.outputs.applicationInsightsName',
        ],
    };
    const module = model.main.module('rbac')!;
    for (const [symbol, [type, param, passed]] of Object.entries(scopes)) {
        const scope = rbac.resource(symbol);
        if (!scope || !scope.existing || scope.type !== type || text(scope.body.name) !== param) {
            problems.push(`rbac.bicep: ${symbol} should be the existing ${type} named by param ${param}`);
        }
        if (text(module.params[param]) !== passed) problems.push(`main.bicep: rbac.${param} should be ${passed}`);
    }
    const wiring: Record<string, string> = {
        appPrincipalId: 'appIdentity.outputs.principalId',
        deployerPrincipalId: 'principalId',
        deployerPrincipalType: 'principalType',
    };
    for (const [param, passed] of Object.entries(wiring)) {
        if (text(module.params[param]) !== passed) problems.push(`main.bicep: rbac.${param} should be ${passed}`);
    }
    return problems;
}

/** The app runs as one user-assigned identity, which also pulls its deployment package. */
export function identityProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const identityModule = model.mainModuleFile('appIdentity');
    if (
        identityModule.resourcesOfType('Microsoft.ManagedIdentity/userAssignedIdentities').filter((r) => !r.existing)
            .length !== 1
    ) {
        problems.push('main.bicep: appIdentity does not deploy a user-assigned identity');
    }
    const app = functionAppResource(model, problems);
    if (!app) return problems;
    const identity = app.body.identity;
    if (valueAt(identity, 'type') !== 'UserAssigned')
        problems.push('function app: identity type should be UserAssigned');
    const assigned = valueAt(identity, 'userAssignedIdentities');
    if (!isObject(assigned) || !Object.keys(assigned).includes("'${identityId}'")) {
        problems.push('function app: the identityId param is not among its user-assigned identities');
    }
    const auth = valueAt(app.body, 'properties.functionAppConfig.deployment.storage.authentication');
    if (
        valueAt(auth, 'type') !== 'UserAssignedIdentity' ||
        text(valueAt(auth, 'userAssignedIdentityResourceId')) !== 'identityId'
    ) {
        problems.push('function app: the deployment package is not read with the user-assigned identity');
    }
    if (text(model.main.module('functionApp')?.params.identityId) !== 'appIdentity.outputs.id') {
        problems.push('main.bicep: functionApp.identityId should be appIdentity.outputs.id');
    }
    return problems;
}

function functionAppResource(model: InfraModel, problems: string[]): BicepResource | undefined {
    const sites = model
        .mainModuleFile('functionApp')
        .resourcesOfType('Microsoft.Web/sites')
        .filter((r) => !r.existing);
    if (sites.length !== 1) {
        problems.push(`function-app.bicep: expected one Microsoft.Web/sites, found ${sites.length}`);
        return undefined;
    }
    return sites[0];
}

/** Flex Consumption plan, Node 20, code from a blob container. */
export function flexConsumptionProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const file = model.mainModuleFile('functionApp');
    const plan = file.resourcesOfType('Microsoft.Web/serverfarms')[0];
    if (valueAt(plan?.body, 'sku.name') !== 'FC1' || valueAt(plan?.body, 'sku.tier') !== 'FlexConsumption') {
        problems.push('function-app.bicep: the plan is not Flex Consumption (FC1)');
    }
    const app = functionAppResource(model, problems);
    const config = valueAt(app?.body, 'properties.functionAppConfig');
    if (valueAt(config, 'runtime.name') !== 'node') problems.push('function app: runtime is not node');
    const version = file.evaluate(valueAt(config, 'runtime.version'));
    const passed = model.main.module('functionApp')?.params.runtimeVersion;
    if ((passed ?? version) !== '20') problems.push(`function app: Node version is ${text(passed ?? version)}, not 20`);
    if (valueAt(config, 'deployment.storage.type') !== 'blobContainer')
        problems.push('function app: no blobContainer deployment storage');
    for (const key of ['instanceMemoryMB', 'maximumInstanceCount']) {
        if (valueAt(config, `scaleAndConcurrency.${key}`) === undefined)
            problems.push(`function app: scaleAndConcurrency.${key} missing`);
    }
    return problems;
}

/** HTTPS only and TLS 1.2 at least, on the app, both storage accounts and Service Bus. */
export function transportProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const app = functionAppResource(model, problems);
    const props = app?.body.properties;
    const expected: Record<string, BicepValue> = {
        httpsOnly: true,
        'siteConfig.minTlsVersion': '1.2',
        'siteConfig.scmMinTlsVersion': '1.2',
        'siteConfig.ftpsState': 'Disabled',
    };
    for (const [path, value] of Object.entries(expected)) {
        if (valueAt(props, path) !== value) problems.push(`function app: ${path} should be ${text(value)}`);
    }
    for (const [file, account] of storageAccounts(model)) {
        const p = account.body.properties;
        if (valueAt(p, 'minimumTlsVersion') !== 'TLS1_2')
            problems.push(`${where(file, account)}: minimumTlsVersion should be TLS1_2`);
        if (valueAt(p, 'supportsHttpsTrafficOnly') !== true)
            problems.push(`${where(file, account)}: supportsHttpsTrafficOnly should be true`);
    }
    const bus = serviceBusNamespace(model);
    if (valueAt(bus?.body, 'properties.minimumTlsVersion') !== '1.2')
        problems.push('service-bus.bicep: minimumTlsVersion should be 1.2');
    return problems;
}

function storageAccounts(model: InfraModel): Array<[BicepFile, BicepResource]> {
    return model.bicepPaths.flatMap((rel) => {
        const file = model.bicep(rel);
        return file
            .resourcesOfType('Microsoft.Storage/storageAccounts')
            .filter((r) => !r.existing)
            .map((r): [BicepFile, BicepResource] => [file, r]);
    });
}

function serviceBusNamespace(model: InfraModel): BicepResource | undefined {
    return model
        .mainModuleFile('serviceBus')
        .resourcesOfType('Microsoft.ServiceBus/namespaces')
        .find((r) => !r.existing);
}

/** Keys are off everywhere: storage shared keys, Service Bus SAS, Application Insights instrumentation keys. */
export function localAuthProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const accounts = storageAccounts(model);
    if (accounts.length === 0) problems.push('no storage account is declared');
    for (const [file, account] of accounts) {
        const p = account.body.properties;
        if (valueAt(p, 'allowSharedKeyAccess') !== false)
            problems.push(`${where(file, account)}: allowSharedKeyAccess should be false`);
        if (valueAt(p, 'allowBlobPublicAccess') !== false)
            problems.push(`${where(file, account)}: allowBlobPublicAccess should be false`);
        if (text(valueAt(p, 'publicNetworkAccess')) !== 'publicNetworkAccess') {
            problems.push(`${where(file, account)}: publicNetworkAccess should come from its parameter`);
        }
        if (!valueAt(p, 'encryption.keySource'))
            problems.push(`${where(file, account)}: encryption at rest is not configured`);
    }
    for (const symbol of ['appStorage', 'replicaStorage']) {
        if (text(model.main.module(symbol)?.params.publicNetworkAccess) !== 'publicNetworkAccess') {
            problems.push(`main.bicep: ${symbol} does not pass the publicNetworkAccess parameter`);
        }
    }
    if (valueAt(serviceBusNamespace(model)?.body, 'properties.disableLocalAuth') !== true) {
        problems.push('service-bus.bicep: disableLocalAuth should be true');
    }
    const insights = model.mainModuleFile('monitoring').resourcesOfType('Microsoft.Insights/components')[0];
    if (valueAt(insights?.body, 'properties.disableLocalAuth') !== true) {
        problems.push('monitoring.bicep: Application Insights DisableLocalAuth should be true');
    }
    return problems;
}

function queueOrTopic(model: InfraModel, type: string, name: string): BicepResource | undefined {
    return model
        .mainModuleFile('serviceBus')
        .resourcesOfType(type)
        .find((r) => !r.existing && model.mainModuleFile('serviceBus').evaluate(r.body.name) === name);
}

/** The provider channel: a session queue and a topic, both deduplicating, on Standard or above. */
export function serviceBusProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const namespace = serviceBusNamespace(model);
    const skuParam = model.mainModuleFile('serviceBus').params.get('skuName');
    const allowed = skuParam?.decorators.find((d) => d.name === 'allowed')?.args[0];
    if (
        text(valueAt(namespace?.body, 'sku.name')) !== 'skuName' ||
        !Array.isArray(allowed) ||
        allowed.includes('Basic')
    ) {
        problems.push(
            'service-bus.bicep: the tier must come from skuName, Standard or Premium (Basic has no topics or sessions)',
        );
    }
    if (model.main.params.get('serviceBusSku')?.defaultValue !== 'Standard')
        problems.push('main.bicep: serviceBusSku should default to Standard');
    if (text(model.main.module('serviceBus')?.params.skuName) !== 'serviceBusSku')
        problems.push('main.bicep: serviceBus.skuName should be serviceBusSku');
    const file = model.mainModuleFile('serviceBus');

    const queue = queueOrTopic(model, 'Microsoft.ServiceBus/namespaces/queues', 'provider-commands');
    if (!queue) problems.push('service-bus.bicep: no provider-commands queue');
    const q = queue?.body.properties;
    for (const flag of ['requiresSession', 'requiresDuplicateDetection', 'deadLetteringOnMessageExpiration']) {
        if (queue && valueAt(q, flag) !== true) problems.push(`provider-commands: ${flag} should be true`);
    }
    const window = file.evaluate(valueAt(q, 'duplicateDetectionHistoryTimeWindow'));
    if (queue && (typeof window !== 'string' || !/^P(T\d+[HMS])|^P\d+D/.test(window))) {
        problems.push('provider-commands: duplicateDetectionHistoryTimeWindow should be an ISO 8601 duration');
    }
    const maxDelivery = file.evaluate(valueAt(q, 'maxDeliveryCount'));
    if (queue && (typeof maxDelivery !== 'number' || maxDelivery < 1))
        problems.push('provider-commands: maxDeliveryCount should be set');

    // The trigger forwards rejected commands to this queue through an output binding; the name is the code's.
    const rejectedName = /REJECTED_COMMANDS_QUEUE = '([^']+)'/.exec(model.text('shared/bus/entities.ts'))?.[1];
    if (!rejectedName) problems.push('shared/bus/entities.ts: REJECTED_COMMANDS_QUEUE not found');
    const rejected = rejectedName
        ? queueOrTopic(model, 'Microsoft.ServiceBus/namespaces/queues', rejectedName)
        : undefined;
    if (rejectedName && !rejected) problems.push(`service-bus.bicep: no ${rejectedName} queue`);
    if (rejected && valueAt(rejected.body.properties, 'requiresSession') === true) {
        problems.push(`${rejectedName}: requiresSession must be off (the output binding sends without a session)`);
    }

    const topic = queueOrTopic(model, 'Microsoft.ServiceBus/namespaces/topics', 'provider-events');
    if (!topic) problems.push('service-bus.bicep: no provider-events topic');
    if (topic && valueAt(topic.body.properties, 'requiresDuplicateDetection') !== true) {
        problems.push('provider-events: requiresDuplicateDetection should be true');
    }
    // A per-site subscription must replace the catch-all $Default rule, or every site receives every event.
    const site = model.mainModuleFile('providerSite');
    const rule = site.resourcesOfType('Microsoft.ServiceBus/namespaces/topics/subscriptions/rules')[0];
    if (
        rule?.body.name !== '$Default' ||
        text(valueAt(rule.body, 'properties.correlationFilter.properties.siteId')) !== 'siteId'
    ) {
        problems.push('provider-site.bicep: the site subscription must replace $Default with a siteId filter');
    }
    return problems;
}

/** The replica account has the containers the app uses (and Event Grid's dead-letter one); the app account, the package one. */
export function containerProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const containers = model.main.evaluate(model.main.module('replicaStorage')?.params.containers);
    const names = Array.isArray(containers)
        ? containers.map((c) => text(model.main.evaluate(c)).replace(/^'|'$/g, ''))
        : [];
    for (const name of [
        ...REPLICA_CONTAINERS,
        text(model.main.vars.get('eventGridDeadLetterContainer')).replace(/^'|'$/g, ''),
    ]) {
        if (!names.includes(name)) problems.push(`main.bicep: replica storage has no container ${name}`);
    }
    const appContainers = text(model.main.module('appStorage')?.params.containers);
    const deployment = text(model.main.module('functionApp')?.params.deploymentContainerName);
    if (!deployment || !appContainers.includes(deployment)) {
        problems.push('main.bicep: the deployment package container is not created in the app storage account');
    }
    const storage = model.mainModuleFile('replicaStorage');
    const containerResource = storage.resourcesOfType('Microsoft.Storage/storageAccounts/blobServices/containers')[0];
    if (
        !containerResource ||
        text(containerResource.loop?.over) !== 'containers' ||
        valueAt(containerResource.body, 'properties.publicAccess') !== 'None'
    ) {
        problems.push('storage-account.bicep: containers are not created from the containers param, private');
    }
    return problems;
}

/** The app settings main.bicep gives the function app, as an object model. */
export function appSettings(model: InfraModel): BicepObject {
    const settings = model.main.evaluate(model.main.module('functionApp')?.params.appSettings);
    return isObject(settings) ? settings : {};
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
        if (SECRET_PATTERN.test(key) || SECRET_PATTERN.test(text(value))) {
            problems.push(`app setting ${key} = ${text(value)} carries a secret`);
        }
    }
    if ('APPLICATIONINSIGHTS_CONNECTION_STRING' in settings) {
        const auth = text(settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING);
        if (auth !== "'ClientId=${appIdentity.outputs.clientId};Authorization=AAD'") {
            problems.push(
                'APPLICATIONINSIGHTS_CONNECTION_STRING is set without Entra ID authentication (ClientId=...;Authorization=AAD)',
            );
        }
        if (
            text(settings.APPLICATIONINSIGHTS_CONNECTION_STRING) !==
            'monitoring.outputs.applicationInsightsConnectionString'
        ) {
            problems.push(
                'APPLICATIONINSIGHTS_CONNECTION_STRING should be the Application Insights locator, nothing else',
            );
        }
    }
    // Nothing else in the deployment may fetch keys either; the hook's template reads only the webhook key.
    for (const rel of model.bicepPaths) {
        const source = model.bicep(rel).source;
        const uses = source.match(/list\w*\(/g) ?? [];
        if (rel === 'infra/hooks/replica-log-subscription.bicep') {
            if (uses.length !== 1 || !/listKeys\('\$\{functionApp\.id\}\/host\/default'/.test(source)) {
                problems.push(`${rel}: may read only the host's blobs_extension key`);
            }
        } else if (uses.length > 0 || /AccountKey=|SharedAccessKey/.test(source)) {
            problems.push(`${rel}: reads or embeds keys (${uses.join(', ') || 'key literal'})`);
        }
    }
    // The settings reach the site through one appsettings resource built from the param, nothing inline.
    const functionAppFile = model.mainModuleFile('functionApp');
    const config = functionAppFile
        .resourcesOfType('Microsoft.Web/sites/config')
        .find((r) => r.body.name === 'appsettings');
    if (!config || text(config.body.properties) !== 'appSettings')
        problems.push('function-app.bicep: appsettings should be exactly the appSettings param');
    const app = functionAppResource(model, problems);
    if (valueAt(app?.body, 'properties.siteConfig.appSettings') !== undefined)
        problems.push('function-app.bicep: inline siteConfig.appSettings bypasses the checked list');
    return problems;
}

const IDENTITY_LOCATORS = ['accountName', 'fullyQualifiedNamespace', 'blobServiceUri', 'serviceUri'];

/**
 * Every setting the app reads (the keys of local.settings.sample.json) is set in Azure: connections in identity
 * form (`<Name>__accountName` or `__fullyQualifiedNamespace`, `__credential=managedidentity`, `__clientId`),
 * the rest by value. FUNCTIONS_WORKER_RUNTIME is Flex Consumption's functionAppConfig.runtime instead.
 */
export function appSettingCoverageProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const sample = (JSON.parse(model.text('local.settings.sample.json')) as { Values: Record<string, string> }).Values;
    const settings = appSettings(model);
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
        if (!IDENTITY_LOCATORS.some((suffix) => `${key}__${suffix}` in settings)) {
            problems.push(
                `connection ${key} has no ${key}__accountName / __fullyQualifiedNamespace / __blobServiceUri`,
            );
        }
        if (settings[`${key}__credential`] !== 'managedidentity')
            problems.push(`connection ${key}: ${key}__credential should be managedidentity`);
        if (text(settings[`${key}__clientId`]) !== 'appIdentity.outputs.clientId') {
            problems.push(`connection ${key}: ${key}__clientId should be the app identity's client id`);
        }
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
        for (const match of model.text(rel).matchAll(SETTING_READ)) {
            if (!read.has(match[1]!)) read.set(match[1]!, rel);
        }
    }
    if (read.size === 0) problems.push('no setting reads found in shared/, functions/, orchestrations/');
    for (const [name, rel] of read) {
        if (!(name in sample) && !(name in SETTINGS_NOT_DEPLOYED)) {
            problems.push(`${rel} reads ${name}, which local.settings.sample.json does not list`);
        }
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
    const module = model.main.module('failoverAccess');
    if (!module) return ['main.bicep: no failoverAccess module (Contributor on the failover resource group)'];
    // The module model keeps params only: read its scope from the declaration's source.
    const declaration = new RegExp(`\\nmodule failoverAccess [^\\n]*\\n([\\s\\S]*?)\\n}`).exec(model.main.source)?.[1];
    const scope = /^ {2}scope: resourceGroup\(([^,]+), ([^)]+)\)$/m.exec(declaration ?? '');
    const [subscriptionArg, groupArg] = [scope?.[1]?.trim(), scope?.[2]?.trim()];
    if (!scope) {
        problems.push('main.bicep: failoverAccess should be scoped resourceGroup(<subscription>, <group>)');
    } else {
        if (text(settings.FAILOVER_SUBSCRIPTION_ID) !== subscriptionArg)
            problems.push(
                `FAILOVER_SUBSCRIPTION_ID is not the subscription failoverAccess grants in (${subscriptionArg})`,
            );
        if (text(settings.FAILOVER_RESOURCE_GROUP) !== groupArg)
            problems.push(`FAILOVER_RESOURCE_GROUP is not the resource group failoverAccess grants on (${groupArg})`);
    }
    if (text(module.params.appPrincipalId) !== 'appIdentity.outputs.principalId')
        problems.push('main.bicep: failoverAccess.appPrincipalId should be the app identity');
    if (text(settings.FAILOVER_IDENTITY_CLIENT_ID) !== 'appIdentity.outputs.clientId')
        problems.push("FAILOVER_IDENTITY_CLIENT_ID should be the app identity's client id");
    if (text(settings.FAILOVER_STORAGE_ACCOUNT_ID) !== 'replicaStorage.outputs.id')
        problems.push('FAILOVER_STORAGE_ACCOUNT_ID should be the replica storage account id');

    const file = model.moduleFile(module);
    const grants = (file?.resourcesOfType(ROLE_ASSIGNMENT) ?? []).map((r) => readRoleAssignment(file!, r, problems));
    const contributor = grants.filter(
        (g) => g.role === 'Contributor' && g.scope === 'resourceGroup()' && g.principal === 'appPrincipalId',
    );
    if (contributor.length !== 1) {
        problems.push(
            `failover-access.bicep: expected one Contributor assignment for appPrincipalId on resourceGroup(), found ${contributor.length}`,
        );
    }
    return problems;
}

interface AzureYaml {
    services?: Record<string, { host?: string; language?: string; project?: string }>;
    hooks?: Record<string, Record<string, { shell?: string; run?: string }>>;
    infra?: { provider?: string; path?: string };
}

const HOOK_TEMPLATE = 'infra/hooks/replica-log-subscription.bicep';

/**
 * The Event Grid subscription of the blob trigger is created after deploy: azure.yaml runs the hook on both
 * shells, the hooks deploy the subscription template with every param it needs, and the template subscribes
 * the merge function's webhook to BlobCreated of .hrl logs in replica-logs, with retries and dead-lettering.
 */
export function eventSubscriptionProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const yaml = loadYaml(model.text('azure.yaml')) as AzureYaml;
    const serviceName = model.main.vars.get('serviceName');
    const service = typeof serviceName === 'string' ? yaml.services?.[serviceName] : undefined;
    if (!service || service.host !== 'function' || service.language !== 'ts') {
        problems.push(`azure.yaml: no ts function service named ${text(serviceName)} (main.bicep's azd-service-name)`);
    }
    if (yaml.infra?.path !== 'infra') problems.push('azure.yaml: infra.path should be infra');
    const expectedRuns: Record<string, string> = {
        posix: './scripts/postdeploy.sh',
        windows: './scripts/postdeploy.ps1',
    };
    for (const [platform, run] of Object.entries(expectedRuns)) {
        if (yaml.hooks?.postdeploy?.[platform]?.run !== run)
            problems.push(`azure.yaml: postdeploy.${platform} should run ${run}`);
    }

    if (!model.hasBicep(HOOK_TEMPLATE)) {
        problems.push(`${HOOK_TEMPLATE} is missing`);
        return problems;
    }
    const template = model.bicep(HOOK_TEMPLATE);
    const scripts: Record<string, RegExp> = {
        'scripts/postdeploy.sh': /^\s*(\w+)="\$/gm,
        'scripts/postdeploy.ps1': /^\s*"(\w+)=\$/gm,
    };
    // The params a script passes are the name=value lines between --parameters and --output.
    for (const [rel, paramPattern] of Object.entries(scripts)) {
        const script = model.text(rel);
        if (!script.includes('replica-log-subscription.bicep'))
            problems.push(`${rel}: does not deploy ${HOOK_TEMPLATE}`);
        if (!script.includes('systemKeys.blobs_extension'))
            problems.push(`${rel}: does not wait for the blobs_extension key`);
        if (!script.includes('az deployment group create')) problems.push(`${rel}: does not deploy the subscription`);
        const block = /--parameters([\s\S]*?)--output/.exec(script)?.[1] ?? '';
        const passed = [...block.matchAll(paramPattern)].map((m) => m[1]!);
        for (const name of passed) {
            if (!template.params.has(name)) problems.push(`${rel}: passes ${name}, not a param of the hook template`);
        }
        for (const param of template.params.values()) {
            if (param.defaultValue === undefined && !passed.includes(param.name))
                problems.push(`${rel}: does not pass ${param.name}`);
        }
        for (const name of /for name in ([^;]+);/s
            .exec(script)?.[1]
            ?.split(/[\s\\]+/)
            .filter(Boolean) ?? []) {
            if (!model.main.outputs.has(name)) problems.push(`${rel}: needs ${name}, which main.bicep does not output`);
        }
    }
    if (template.params.get('functionName')?.defaultValue !== MERGE_FUNCTION)
        problems.push(`hook template: functionName should default to ${MERGE_FUNCTION}`);
    if (template.params.get('logsContainerName')?.defaultValue !== 'replica-logs')
        problems.push('hook template: logsContainerName should default to replica-logs');

    const subscription = template.resourcesOfType('Microsoft.EventGrid/systemTopics/eventSubscriptions')[0];
    const p = subscription?.body.properties;
    if (!subscription) problems.push('hook template: no system topic event subscription');
    const included = valueAt(p, 'filter.includedEventTypes');
    if (!Array.isArray(included) || included.length !== 1 || included[0] !== 'Microsoft.Storage.BlobCreated') {
        problems.push('hook template: the subscription should include only Microsoft.Storage.BlobCreated');
    }
    if (
        text(valueAt(p, 'filter.subjectBeginsWith')) !==
        "'/blobServices/default/containers/${logsContainerName}/blobs/'"
    ) {
        problems.push('hook template: subjectBeginsWith should select the logs container');
    }
    if (valueAt(p, 'filter.subjectEndsWith') !== '.hrl') problems.push('hook template: subjectEndsWith should be .hrl');
    if (valueAt(p, 'destination.endpointType') !== 'WebHook')
        problems.push('hook template: destination should be a WebHook');
    const url = text(valueAt(p, 'destination.properties.endpointUrl'));
    if (
        !url.includes('/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}')
    ) {
        problems.push(`hook template: webhook URL ${url} is not the blob extension endpoint of the function`);
    }
    if (!/\.systemKeys\.blobs_extension$/.test(text(template.vars.get('blobsExtensionKey')))) {
        problems.push("hook template: blobsExtensionKey should be the host's systemKeys.blobs_extension");
    }
    for (const key of ['maxDeliveryAttempts', 'eventTimeToLiveInMinutes']) {
        if (valueAt(p, `retryPolicy.${key}`) === undefined) problems.push(`hook template: retryPolicy.${key} missing`);
    }
    const deadLetter = valueAt(p, 'deadLetterWithResourceIdentity');
    if (
        valueAt(deadLetter, 'deadLetterDestination.endpointType') !== 'StorageBlob' ||
        text(valueAt(deadLetter, 'deadLetterDestination.properties.blobContainerName')) !== 'deadLetterContainerName'
    ) {
        problems.push('hook template: undeliverable events should be dead-lettered to the dead-letter container');
    }
    if (valueAt(deadLetter, 'identity.type') !== 'SystemAssigned') {
        problems.push("hook template: dead-lettering should use the system topic's identity (storage has no keys)");
    }
    return problems;
}

/** Telemetry names the alert queries rely on: metric names and trace event / health values. */
export function alertTelemetryNames(model: InfraModel): string[] {
    const alerts = model.mainModuleFile('alerts');
    const names = new Set<string>();
    for (const rule of alerts.resourcesOfType('Microsoft.Insights/scheduledQueryRules')) {
        const criteria = valueAt(rule.body, 'properties.criteria.allOf');
        for (const criterion of Array.isArray(criteria) ? criteria : []) {
            const query = valueAt(criterion, 'query');
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
    const alerts = model.mainModuleFile('alerts');
    const rules = alerts.resourcesOfType('Microsoft.Insights/scheduledQueryRules');
    const queries = rules.flatMap((r) => {
        const criteria = valueAt(r.body, 'properties.criteria.allOf');
        return (Array.isArray(criteria) ? criteria : [])
            .map((c) => valueAt(c, 'query'))
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
    if (!group || !text(valueAt(group.body, 'properties.emailReceivers')).includes('emailAddress: alertEmail')) {
        problems.push('alerts.bicep: the action group does not e-mail alertEmail');
    }
    for (const rule of rules) {
        if (text(valueAt(rule.body, 'properties.actions.actionGroups')) !== `[${group?.symbol ?? '?'}.id]`) {
            problems.push(`${where(alerts, rule)}: does not notify the action group`);
        }
        if (text(valueAt(rule.body, 'properties.scopes')) !== '[applicationInsightsId]') {
            problems.push(`${where(alerts, rule)}: should query Application Insights`);
        }
    }
    const rpo = rules.find((r) => /ReplicationRpoSeconds/.test(text(r.body.properties)));
    if (rpo && text(valueAt(rpo.body, 'properties.criteria.allOf')).indexOf('threshold: rpoThresholdSeconds') < 0) {
        problems.push('alerts.bicep: the RPO alert threshold should be the rpoThresholdSeconds param');
    }
    if (text(model.main.module('alerts')?.params.alertEmail) !== 'alertEmail')
        problems.push('main.bicep: alerts.alertEmail should be the alertEmail param');
    const docs = model.text('docs/deploy.md');
    for (const name of alertTelemetryNames(model)) {
        if (!docs.includes(name))
            problems.push(`docs/deploy.md does not document the telemetry name ${name} that an alert queries`);
    }
    return problems;
}
