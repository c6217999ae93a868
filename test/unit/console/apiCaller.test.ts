import { HttpRequest } from '@azure/functions';
import {
    API_ROLES,
    apiAuthLevel,
    apiAuthenticationMode,
    authorize,
    callerOf,
    parseClientPrincipal,
} from '../../../functions/apiCaller';
import { HvrError } from '../../../shared/errors';

const ENTRA = { API_AUTHENTICATION: 'EntraId' } as NodeJS.ProcessEnv;

function principal(name: string, roles: string[]): string {
    const claims = [
        { typ: 'name', val: name },
        {
            typ: 'http://schemas.microsoft.com/identity/claims/objectidentifier',
            val: '00000000-0000-0000-0000-00000000abcd',
        },
        ...roles.map((r) => ({ typ: 'roles', val: r })),
    ];
    return Buffer.from(JSON.stringify({ auth_typ: 'aad', name_typ: 'name', role_typ: 'roles', claims })).toString(
        'base64',
    );
}

function request(method: string, headers: Record<string, string> = {}): HttpRequest {
    return new HttpRequest({ method, url: 'http://localhost/api/replicationJobs', headers });
}

function refusal(f: () => unknown): { code: string; message: string } {
    try {
        f();
    } catch (err) {
        if (err instanceof HvrError) return { code: err.code, message: err.message };
        throw err;
    }
    throw new Error('expected a refusal');
}

describe('who calls the management API', () => {
    it('uses function keys by default: every route keeps authLevel function and the caller is "function key"', () => {
        expect(apiAuthenticationMode({})).toBe('FunctionKey');
        expect(apiAuthLevel({})).toBe('function');
        // A principal header proves nothing where the key is the credential.
        const forged = request('POST', { 'x-ms-client-principal': principal('mallory', []) });
        expect(callerOf(forged, {})).toEqual({ name: 'function key', via: 'FunctionKey', roles: [API_ROLES.operator] });
    });

    it('behind App Service authentication reads the principal and its app roles', () => {
        expect(apiAuthLevel(ENTRA)).toBe('anonymous');
        const alice = request('POST', {
            'x-ms-client-principal': principal('alice@contoso.com', [API_ROLES.operator]),
        });
        expect(authorize(alice, ENTRA)).toEqual({
            name: 'alice@contoso.com',
            via: 'EntraId',
            objectId: '00000000-0000-0000-0000-00000000abcd',
            roles: [API_ROLES.operator],
        });
    });

    it('lets a reader read but not act, and names the role that is missing', () => {
        const header = { 'x-ms-client-principal': principal('bob', [API_ROLES.reader]) };
        expect(authorize(request('GET', header), ENTRA).name).toBe('bob');
        expect(refusal(() => authorize(request('POST', header), ENTRA))).toEqual({
            code: 'FORBIDDEN',
            message:
                'bob may not POST this resource: it needs the app role Replication.Operator (has: Replication.Reader).',
        });
        const nobody = { 'x-ms-client-principal': principal('carol', []) };
        expect(refusal(() => authorize(request('GET', nobody), ENTRA))).toEqual({
            code: 'FORBIDDEN',
            message:
                'carol may not GET this resource: it needs the app role Replication.Reader or Replication.Operator (has: none).',
        });
    });

    it('refuses a request without a readable principal (401) and a mode it does not know', () => {
        expect(refusal(() => authorize(request('GET'), ENTRA)).code).toBe('UNAUTHORIZED');
        expect(parseClientPrincipal('not base64 json')).toBeUndefined();
        expect(parseClientPrincipal(Buffer.from('{"claims":[]}').toString('base64'))).toBeUndefined();
        expect(refusal(() => apiAuthenticationMode({ API_AUTHENTICATION: 'Basic' })).code).toBe('CONFIG_MISSING');
    });
});
