import { BicepExpr, BicepFile, sourceText, valueAt } from '../../support/bicep';

describe('the Bicep query layer', () => {
    const source = `
targetScope = 'subscription'

@description('Where to deploy.')
@allowed(['westeurope', 'northeurope'])
param location string = 'westeurope'
param name string

var roles = {
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
}
var label = 'it\\'s \${name}'
var query = '''
traces
| where x == 'y'
'''

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: name
}

resource grants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (p, i) in principals: if (!empty(p)) {
  name: guid(account.id, p, roles.reader)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: p
    enabled: true
    count: 3
    nothing: null
  }
}]

module app 'modules/app.bicep' = {
  name: 'app'
  params: {
    location: location
  }
}

output accountId string = account.id
`;
    const file = BicepFile.parse(source, '/repo/infra/main.bicep');

    it('reads params with their defaults and decorators', () => {
        expect(file.targetScope).toBe('subscription');
        const location = file.params.get('location')!;
        expect(location.defaultValue).toBe('westeurope');
        expect(location.decorators.map((d) => d.name)).toEqual(['description', 'allowed']);
        expect(location.decorators[1]!.args[0]).toEqual(['westeurope', 'northeurope']);
        expect(file.params.get('name')!.defaultValue).toBeUndefined();
    });

    it('decodes strings: escapes, multi-line strings, and interpolation kept as an expression', () => {
        expect(file.vars.get('query')).toBe("traces\n| where x == 'y'\n");
        const label = file.vars.get('label');
        expect(label).toBeInstanceOf(BicepExpr);
        expect((label as BicepExpr).text).toBe("'it\\'s ${name}'");
    });

    it('models resources with type, api version, existing, loop, condition and body', () => {
        const account = file.resource('account')!;
        expect(account).toMatchObject({
            type: 'Microsoft.Storage/storageAccounts',
            apiVersion: '2023-05-01',
            existing: true,
        });
        const grants = file.resourcesOfType('microsoft.authorization/roleassignments');
        expect(grants).toHaveLength(1);
        const grant = grants[0]!;
        expect(grant.existing).toBe(false);
        expect(grant.loop).toMatchObject({ item: 'p', index: 'i' });
        expect(sourceText(grant.loop!.over)).toBe('principals');
        expect(grant.condition!.text).toBe('(!empty(p))');
        expect(valueAt(grant.body, 'properties.enabled')).toBe(true);
        expect(valueAt(grant.body, 'properties.count')).toBe(3);
        expect(valueAt(grant.body, 'properties.nothing')).toBeNull();
        expect(valueAt(grant.body, 'properties.absent')).toBeUndefined();
    });

    it('exposes calls and folds references to vars', () => {
        const grant = file.resource('grants')!;
        const call = (grant.body.name as BicepExpr).call!;
        expect(call.name).toBe('guid');
        expect(call.args.map(sourceText)).toEqual(['account.id', 'p', 'roles.reader']);
        expect(file.evaluate(call.args[2])).toBe('acdd72a7-3385-48ef-bd42-f606fba81ae7');
        // Unknown references stay expressions rather than turning into something they are not.
        expect(sourceText(file.evaluate(call.args[0]))).toBe('account.id');
    });

    it('resolves local module paths and keeps registry modules unresolved', () => {
        const app = file.module('app')!;
        expect(app.file).toBe('/repo/infra/modules/app.bicep');
        expect(sourceText(app.params.location)).toBe('location');
        const registry = BicepFile.parse(
            "module m 'br/public:avm/res/web/site:0.15.1' = {\n  name: 'm'\n}\n",
            '/x/main.bicep',
        );
        expect(registry.modules[0]!.file).toBeUndefined();
    });

    it('reads outputs', () => {
        expect(sourceText(file.outputs.get('accountId')!.value)).toBe('account.id');
    });

    it('finds no syntax errors in valid Bicep', () => {
        expect(file.errors).toEqual([]);
    });

    it('reports ERROR and MISSING nodes with their line', () => {
        const unclosed = BicepFile.parse('var a = {', 'unclosed.bicep');
        expect(unclosed.errors).toEqual([{ kind: 'MISSING', line: 1, column: 10, text: '}' }]);
        const garbage = BicepFile.parse('param = = string\n', 'garbage.bicep');
        expect(garbage.errors.some((e) => e.kind === 'ERROR' && e.line === 1)).toBe(true);
    });
});
