import {
    ArmResource,
    ArmResourceId,
    ArmValue,
    describe,
    isArmObject,
    jsonAt,
    jsonText,
} from '../../support/armTemplate';
import { InfraModel } from './infraModel';

/**
 * What the deployment must guarantee, as checks over the compiled ARM template of an {@link InfraModel}. Each
 * returns the problems it finds (empty: fine), phrased so that a failing test says what is missing and where.
 * Values are read as Azure would get them: what is known before deployment is a plain value, what is not reads
 * like the Bicep it came from (`appIdentity.outputs.clientId`).
 */

/** Built-in Azure role definition ids (the same in every tenant). */
export const BUILT_IN_ROLES: Readonly<Record<string, string>> = {
    'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
    'Storage Blob Data Contributor': 'ba92f5b4-2d11-453d-a403-e96b0029c9fe',
    'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
    'Storage Queue Data Message Sender': 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a',
    'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
    'Storage Blob Delegator': 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a',
    'Azure Service Bus Data Sender': '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39',
    'Azure Service Bus Data Receiver': '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0',
    'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb',
    'Key Vault Crypto Service Encryption User': 'e147488a-f6f5-4113-8e2d-b22465e65bf6',
    Contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
};

const ROLE_NAME_BY_ID = new Map(Object.entries(BUILT_IN_ROLES).map(([name, id]) => [id, name]));

/** The resources the app's data roles are scoped to, as the rbac module's compiled scopes read. */
export const APP_ROLE_SCOPES: Readonly<Record<string, string>> = {
    appStorage: 'Microsoft.Storage/storageAccounts/appStorage.outputs.name',
    replicaStorage: 'Microsoft.Storage/storageAccounts/replicaStorage.outputs.name',
    serviceBus: 'Microsoft.ServiceBus/namespaces/serviceBus.outputs.name',
    applicationInsights: 'Microsoft.Insights/components/monitoring.outputs.applicationInsightsName',
};

/** The app's data roles (rbac.bicep), each for the app identity and the deploying user. */
export const EXPECTED_APP_ROLES: ReadonlyArray<{ scope: keyof typeof APP_ROLE_SCOPES; role: string }> = [
    { scope: 'appStorage', role: 'Storage Blob Data Owner' },
    { scope: 'appStorage', role: 'Storage Queue Data Contributor' },
    { scope: 'appStorage', role: 'Storage Table Data Contributor' },
    { scope: 'replicaStorage', role: 'Storage Blob Data Owner' },
    { scope: 'replicaStorage', role: 'Storage Table Data Contributor' },
    { scope: 'replicaStorage', role: 'Storage Blob Delegator' },
    // The merge's queue trigger on replica-log-events (and its poison queue).
    { scope: 'replicaStorage', role: 'Storage Queue Data Contributor' },
    { scope: 'serviceBus', role: 'Azure Service Bus Data Sender' },
    { scope: 'serviceBus', role: 'Azure Service Bus Data Receiver' },
    { scope: 'applicationInsights', role: 'Monitoring Metrics Publisher' },
];

export const ROLE_ASSIGNMENT = 'Microsoft.Authorization/roleAssignments';

export function text(value: ArmValue | undefined): string {
    return describe(value);
}

/** The text of a name built by format() (`'${...}/provider-commands'`) without its quotes. */
export function nameText(value: ArmValue | undefined): string {
    return describe(value).replace(/^'|'$/g, '');
}

/** Every entry point compiled and linted: the diagnostics the CLI printed (none is the goal). */
export function compileProblems(diagnostics: Record<string, string[]>): string[] {
    return Object.entries(diagnostics).flatMap(([file, lines]) => lines.map((line) => `${file}: ${line}`));
}

/** main.parameters.json maps onto main.bicep's params, and azd supplies every param without a default. */
export function parameterFileProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const json = JSON.parse(model.text('infra/main.parameters.json')) as { parameters: Record<string, unknown> };
    const declared = model.main.template.parameters ?? {};
    for (const name of Object.keys(json.parameters)) {
        if (!(name in declared)) problems.push(`main.parameters.json sets ${name}, not a param of main.bicep`);
    }
    for (const [name, param] of Object.entries(declared)) {
        if (param.defaultValue === undefined && !(name in json.parameters)) {
            problems.push(`main.bicep param ${name} has no default and main.parameters.json does not set it`);
        }
    }
    if (JSON.stringify(json.parameters.principalId) !== JSON.stringify({ value: '${AZURE_PRINCIPAL_ID}' })) {
        problems.push("main.parameters.json must pass azd's AZURE_PRINCIPAL_ID as principalId");
    }
    return problems;
}

/** Each resource type is deployed with one API version, a dated one; previews only where no GA version has it. */
export const PREVIEW_API_VERSIONS_ALLOWED: Readonly<Record<string, string>> = {};

export function apiVersionProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const versions = new Map<string, Set<string>>();
    for (const r of model.main.allResources) {
        const type = r.type.toLowerCase();
        if (!versions.has(type)) versions.set(type, new Set());
        versions.get(type)!.add(r.apiVersion);
        if (!/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(r.apiVersion))
            problems.push(`${r.where}: API version ${r.apiVersion}`);
        if (r.apiVersion.endsWith('-preview') && !(r.type in PREVIEW_API_VERSIONS_ALLOWED)) {
            problems.push(`${r.where}: preview API version ${r.apiVersion}`);
        }
    }
    for (const [type, set] of versions) {
        if (set.size > 1) problems.push(`${type} is deployed with several API versions: ${[...set].sort().join(', ')}`);
    }
    return problems;
}

export interface Grant {
    resource: ArmResource;
    /** What it is granted on: `Microsoft.Storage/storageAccounts/replicaStorage.outputs.name`, `resourceGroup()`. */
    scope: string;
    role?: string;
    principal: string;
    principalType: string;
    /** True when it is one assignment per entry of the module's `principals`. */
    everyPrincipal: boolean;
}

/** Reads one role assignment; problems with its shape (role id, name, principal type) go to `problems`. */
export function readGrant(resource: ArmResource, problems: string[]): Grant {
    const at = resource.where;
    const scope = resource.json.scope === undefined ? 'resourceGroup()' : text(resource.get('scope'));
    const principal = text(resource.get('properties.principalId'));
    const principalType = text(resource.get('properties.principalType'));
    const everyPrincipal =
        jsonAt(resource.json, 'copy.count') === "[length(variables('principals'))]" &&
        jsonAt(resource.json, 'properties.principalId') === "[variables('principals')[copyIndex()].id]";
    const grant: Grant = { resource, scope, principal, principalType, everyPrincipal };
    if (!principal) problems.push(`${at}: no principalId`);
    if (!principalType) problems.push(`${at}: no principalType (needed for identities that were just created)`);

    const roleDefinition = resource.get('properties.roleDefinitionId');
    const roleId = roleDefinition instanceof ArmResourceId ? roleDefinition.names.at(-1) : undefined;
    if (
        !(roleDefinition instanceof ArmResourceId) ||
        roleDefinition.resourceType !== 'Microsoft.Authorization/roleDefinitions'
    ) {
        problems.push(
            `${at}: roleDefinitionId should be subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <id>)`,
        );
    } else if (typeof roleId !== 'string' || !ROLE_NAME_BY_ID.has(roleId)) {
        problems.push(`${at}: role definition ${text(roleId)} is not a known built-in role id`);
    } else {
        grant.role = ROLE_NAME_BY_ID.get(roleId);
    }

    const guid = resource.deployment.callArgs(resource.json.name, 'guid');
    if (!guid || guid.length !== 3) {
        problems.push(`${at}: name should be guid(scope.id, principal, role), got ${jsonText(resource.json.name)}`);
        return grant;
    }
    const [scopeArg, principalArg, roleArg] = guid;
    const expectedScope = scope === 'resourceGroup()' ? 'resourceGroup().id' : scope;
    if (text(scopeArg) !== expectedScope)
        problems.push(`${at}: guid() starts with ${text(scopeArg)}, not the scope ${scope}`);
    // A resource's own identity may be named by the resource id, which is known before the identity exists.
    const ownIdentity =
        principalArg instanceof ArmResourceId && principal === `reference(${principalArg.text}).identity.principalId`;
    if (text(principalArg) !== principal && !ownIdentity) {
        problems.push(`${at}: guid() names principal ${text(principalArg)}, but the assignment is for ${principal}`);
    }
    if (roleArg !== roleId)
        problems.push(`${at}: guid() names role ${text(roleArg)}, but the assignment grants ${text(roleId)}`);
    return grant;
}

/** Every role assignment in the deployment: a built-in role, named guid(scope, principal, role). */
export function roleAssignmentShapeProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    for (const r of model.main.allResources.filter((r) => r.type === ROLE_ASSIGNMENT)) {
        readGrant(r, problems);
        if (r.json.scope === undefined && r.deployment.name !== 'failoverAccess') {
            problems.push(`${r.where}: no scope (a role assignment at resource-group scope grants too much)`);
        }
    }
    return problems;
}

/**
 * The app identity and the deploying user get each data role of {@link EXPECTED_APP_ROLES}, on the resources
 * main.bicep wires them to, once per role.
 */
export function appRoleProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const rbac = model.module('rbac');
    const grants = rbac.resourcesOfType(ROLE_ASSIGNMENT).map((r) => readGrant(r, []));
    for (const expected of EXPECTED_APP_ROLES) {
        const scope = APP_ROLE_SCOPES[expected.scope];
        const found = grants.filter((g) => g.scope === scope && g.role === expected.role);
        if (found.length !== 1) {
            problems.push(
                `rbac.bicep: expected one ${expected.role} assignment on ${expected.scope}, found ${found.length}`,
            );
        } else if (!found[0]!.everyPrincipal) {
            problems.push(`rbac.bicep: ${expected.role} on ${expected.scope} is not granted to every principal`);
        }
    }
    const principals = (withDeployer: boolean) =>
        text(
            (withDeployer ? model.withParameters({ principalId: 'deployer-object-id' }) : model)
                .module('rbac')
                .variable('principals'),
        );
    if (principals(false) !== '[{ id: appIdentity.outputs.principalId, type: ServicePrincipal }]') {
        problems.push(
            `rbac.bicep: principals should be the app identity as a ServicePrincipal, is ${principals(false)}`,
        );
    }
    if (!principals(true).includes('{ id: deployer-object-id, type: User }')) {
        problems.push(
            `rbac.bicep: principals does not include the deploying user (azd's principalId, a User by default)`,
        );
    }
    return problems;
}

function functionApp(model: InfraModel, problems: string[]): ArmResource | undefined {
    const sites = model.module('functionApp').resourcesOfType('Microsoft.Web/sites');
    if (sites.length !== 1)
        problems.push(`function-app.bicep: expected one Microsoft.Web/sites, found ${sites.length}`);
    return sites[0];
}

/** The app runs as one user-assigned identity, which also pulls its deployment package. */
export function identityProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    if (model.module('appIdentity').resourcesOfType('Microsoft.ManagedIdentity/userAssignedIdentities').length !== 1)
        problems.push('main.bicep: appIdentity does not deploy a user-assigned identity');
    const app = functionApp(model, problems);
    if (!app) return problems;
    if (app.get('identity.type') !== 'UserAssigned')
        problems.push('function app: identity type should be UserAssigned');
    const assigned = app.get('identity.userAssignedIdentities');
    if (!isArmObject(assigned) || JSON.stringify(Object.keys(assigned)) !== '["appIdentity.outputs.id"]') {
        problems.push(`function app: its only user-assigned identity should be the app identity, is ${text(assigned)}`);
    }
    const auth = 'properties.functionAppConfig.deployment.storage.authentication';
    if (
        app.get(`${auth}.type`) !== 'UserAssignedIdentity' ||
        text(app.get(`${auth}.userAssignedIdentityResourceId`)) !== 'appIdentity.outputs.id'
    ) {
        problems.push('function app: the deployment package is not read with the user-assigned identity');
    }
    return problems;
}

/** The Node.js major version the app runs on in Azure: the newest Flex Consumption supports GA. */
export const AZURE_NODE_VERSION = '22';

/** Flex Consumption plan, Node {@link AZURE_NODE_VERSION}, code from a blob container. */
export function flexConsumptionProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const plan = model.module('functionApp').resourcesOfType('Microsoft.Web/serverfarms')[0];
    if (plan?.get('sku.name') !== 'FC1' || plan.get('sku.tier') !== 'FlexConsumption') {
        problems.push('function-app.bicep: the plan is not Flex Consumption (FC1)');
    }
    const app = functionApp(model, problems);
    const config = 'properties.functionAppConfig';
    if (app?.get(`${config}.runtime.name`) !== 'node') problems.push('function app: runtime is not node');
    const version = app?.get(`${config}.runtime.version`);
    if (version !== AZURE_NODE_VERSION)
        problems.push(`function app: Node version is ${text(version)}, not ${AZURE_NODE_VERSION}`);
    if (app?.get(`${config}.deployment.storage.type`) !== 'blobContainer')
        problems.push('function app: no blobContainer deployment storage');
    for (const key of ['instanceMemoryMB', 'maximumInstanceCount']) {
        if (typeof app?.get(`${config}.scaleAndConcurrency.${key}`) !== 'number')
            problems.push(`function app: scaleAndConcurrency.${key} missing`);
    }
    return problems;
}

function storageAccounts(model: InfraModel): ArmResource[] {
    return model.main.allResources.filter((r) => r.type === 'Microsoft.Storage/storageAccounts');
}

function serviceBusNamespace(model: InfraModel): ArmResource | undefined {
    return model.module('serviceBus').resourcesOfType('Microsoft.ServiceBus/namespaces')[0];
}

/** HTTPS only and TLS 1.2 at least, on the app, both storage accounts and Service Bus. */
export function transportProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const app = functionApp(model, problems);
    const expected: Record<string, ArmValue> = {
        'properties.httpsOnly': true,
        'properties.siteConfig.minTlsVersion': '1.2',
        'properties.siteConfig.scmMinTlsVersion': '1.2',
        'properties.siteConfig.ftpsState': 'Disabled',
    };
    for (const [path, value] of Object.entries(expected)) {
        if (app?.get(path) !== value) problems.push(`function app: ${path} should be ${text(value)}`);
    }
    for (const account of storageAccounts(model)) {
        if (account.get('properties.minimumTlsVersion') !== 'TLS1_2')
            problems.push(`${account.where}: minimumTlsVersion should be TLS1_2`);
        if (account.get('properties.supportsHttpsTrafficOnly') !== true)
            problems.push(`${account.where}: supportsHttpsTrafficOnly should be true`);
    }
    if (serviceBusNamespace(model)?.get('properties.minimumTlsVersion') !== '1.2')
        problems.push('service-bus.bicep: minimumTlsVersion should be 1.2');
    return problems;
}

/** Keys are off everywhere: storage shared keys, Service Bus SAS, Application Insights instrumentation keys. */
export function localAuthProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const accounts = storageAccounts(model);
    if (accounts.length !== 2) problems.push(`expected the app and replica storage accounts, found ${accounts.length}`);
    for (const account of accounts) {
        if (account.get('properties.allowSharedKeyAccess') !== false)
            problems.push(`${account.where}: allowSharedKeyAccess should be false`);
        if (account.get('properties.allowBlobPublicAccess') !== false)
            problems.push(`${account.where}: allowBlobPublicAccess should be false`);
        if (jsonAt(account.json, 'properties.publicNetworkAccess') !== "[parameters('publicNetworkAccess')]")
            problems.push(`${account.where}: publicNetworkAccess should come from its parameter`);
        if (!account.get('properties.encryption.keySource'))
            problems.push(`${account.where}: encryption at rest is not configured`);
    }
    for (const name of ['appStorage', 'replicaStorage']) {
        if (model.module(name).passed('publicNetworkAccess') !== "[parameters('publicNetworkAccess')]")
            problems.push(`main.bicep: ${name} does not pass the publicNetworkAccess parameter`);
    }
    if (serviceBusNamespace(model)?.get('properties.disableLocalAuth') !== true)
        problems.push('service-bus.bicep: disableLocalAuth should be true');
    const insights = model.module('monitoring').resourcesOfType('Microsoft.Insights/components')[0];
    if (insights?.get('properties.DisableLocalAuth') !== true)
        problems.push('monitoring.bicep: Application Insights DisableLocalAuth should be true');
    return problems;
}

function entity(model: InfraModel, type: string, name: string): ArmResource | undefined {
    return model
        .module('serviceBus')
        .resourcesOfType(type)
        .find((r) => nameText(r.get('name')).endsWith(`/${name}`));
}

/** The provider channel: a session queue and a topic, both deduplicating, on Standard or above. */
export function serviceBusProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const bus = model.module('serviceBus');
    const allowed = bus.template.parameters?.skuName?.allowedValues ?? [];
    if (
        jsonAt(serviceBusNamespace(model)?.json, 'sku.name') !== "[parameters('skuName')]" ||
        allowed.includes('Basic') ||
        allowed.length === 0
    ) {
        problems.push(
            'service-bus.bicep: the tier must come from skuName, Standard or Premium (Basic has no topics or sessions)',
        );
    }
    if (model.main.template.parameters?.serviceBusSku?.defaultValue !== 'Standard')
        problems.push('main.bicep: serviceBusSku should default to Standard');
    if (bus.passed('skuName') !== "[parameters('serviceBusSku')]")
        problems.push('main.bicep: serviceBus.skuName should be serviceBusSku');

    const queue = entity(model, 'Microsoft.ServiceBus/namespaces/queues', 'provider-commands');
    if (!queue) problems.push('service-bus.bicep: no provider-commands queue');
    for (const flag of ['requiresSession', 'requiresDuplicateDetection', 'deadLetteringOnMessageExpiration']) {
        if (queue && queue.get(`properties.${flag}`) !== true)
            problems.push(`provider-commands: ${flag} should be true`);
    }
    const window = queue?.get('properties.duplicateDetectionHistoryTimeWindow');
    if (queue && (typeof window !== 'string' || !/^P(T\d+[HMS])|^P\d+D/.test(window)))
        problems.push('provider-commands: duplicateDetectionHistoryTimeWindow should be an ISO 8601 duration');
    const maxDelivery = queue?.get('properties.maxDeliveryCount');
    if (queue && (typeof maxDelivery !== 'number' || maxDelivery < 1))
        problems.push('provider-commands: maxDeliveryCount should be set');

    // The trigger forwards rejected commands to this queue through an output binding; the name is the code's.
    const rejectedName = /REJECTED_COMMANDS_QUEUE = '([^']+)'/.exec(model.text('functions/providerCommands.ts'))?.[1];
    if (!rejectedName) problems.push('functions/providerCommands.ts: REJECTED_COMMANDS_QUEUE not found');
    const rejected = rejectedName ? entity(model, 'Microsoft.ServiceBus/namespaces/queues', rejectedName) : undefined;
    if (rejectedName && !rejected) problems.push(`service-bus.bicep: no ${rejectedName} queue`);
    if (rejected?.get('properties.requiresSession') === true)
        problems.push(`${rejectedName}: requiresSession must be off (the output binding sends without a session)`);

    const topic = entity(model, 'Microsoft.ServiceBus/namespaces/topics', 'provider-events');
    if (!topic) problems.push('service-bus.bicep: no provider-events topic');
    if (topic && topic.get('properties.requiresDuplicateDetection') !== true)
        problems.push('provider-events: requiresDuplicateDetection should be true');
    // A per-site subscription must replace the catch-all $Default rule, or every site receives every event.
    const site = model.module('providerSite');
    const rule = site.resourcesOfType('Microsoft.ServiceBus/namespaces/topics/subscriptions/rules')[0];
    if (
        !nameText(rule?.get('name')).endsWith('/$Default') ||
        jsonAt(rule?.json, 'properties.correlationFilter.properties.siteId') !== "[parameters('siteId')]"
    ) {
        problems.push('provider-site.bicep: the site subscription must replace $Default with a siteId filter');
    }
    return problems;
}

export const REPLICA_CONTAINERS = [
    'replica-logs',
    'replicas',
    'replica-logs-quarantine',
    'failover',
    'replica-logs-deadletter',
];

/** The replica account has the containers the app and Event Grid use; the app account, the package one. */
export function containerProblems(model: InfraModel): string[] {
    const problems: string[] = [];
    const replica = model.module('replicaStorage');
    const containers = replica.param('containers');
    for (const name of REPLICA_CONTAINERS) {
        if (!Array.isArray(containers) || !containers.includes(name))
            problems.push(`main.bicep: replica storage has no container ${name}`);
    }
    const appContainers = model.module('appStorage').param('containers');
    const deployment = model.module('functionApp').param('deploymentContainerName');
    if (!Array.isArray(appContainers) || !appContainers.some((c) => text(c) === text(deployment)))
        problems.push('main.bicep: the deployment package container is not created in the app storage account');
    for (const r of replica.resourcesOfType('Microsoft.Storage/storageAccounts/blobServices/containers')) {
        if (
            jsonAt(r.json, 'copy.count') !== "[length(parameters('containers'))]" ||
            r.get('properties.publicAccess') !== 'None'
        )
            problems.push('storage-account.bicep: containers are not created from the containers param, private');
    }
    for (const r of replica.resourcesOfType('Microsoft.Storage/storageAccounts/queueServices/queues')) {
        if (jsonAt(r.json, 'copy.count') !== "[length(parameters('queues'))]")
            problems.push('storage-account.bicep: queues are not created from the queues param');
    }
    return problems;
}
