import { HttpRequest } from '@azure/functions';
import { optionalSetting } from '../shared/config';
import { HvrError } from '../shared/errors';
import type { JobRequester } from '../shared/state/jobs';

/**
 * Who calls the management API and what they may do. This file registers no function.
 *
 * Two modes, named by the app setting API_AUTHENTICATION:
 * - `FunctionKey` (default, and the local host): the Functions host checks the key (`authLevel: 'function'`);
 *   whoever holds it may do everything, and jobs record "function key" as who started them.
 * - `EntraId` (Azure, set by infra together with App Service authentication): App Service authentication signs
 *   the caller in and passes the principal in `x-ms-client-principal` (a header the platform sets and strips from
 *   client requests). The routes are `authLevel: 'anonymous'` behind it, and every handler requires a principal
 *   with an app role: `Replication.Reader` may read, `Replication.Operator` may also act (enable, resync,
 *   failover, disable, policies, sites).
 */

export const API_AUTHENTICATION_MODES = ['FunctionKey', 'EntraId'] as const;
export type ApiAuthenticationMode = (typeof API_AUTHENTICATION_MODES)[number];

/** The Entra app roles of the API (defined on its app registration, docs/console.md). */
export const API_ROLES = {
    reader: 'Replication.Reader',
    operator: 'Replication.Operator',
} as const;

export function apiAuthenticationMode(env: NodeJS.ProcessEnv = process.env): ApiAuthenticationMode {
    const raw = optionalSetting('API_AUTHENTICATION', env) ?? 'FunctionKey';
    if (!(API_AUTHENTICATION_MODES as readonly string[]).includes(raw)) {
        throw new HvrError(
            'CONFIG_MISSING',
            `The app setting API_AUTHENTICATION must be ${API_AUTHENTICATION_MODES.join(' or ')}; got "${raw}".`,
            { setting: 'API_AUTHENTICATION' },
        );
    }
    return raw as ApiAuthenticationMode;
}

/** The `authLevel` of every management route: the function key, or none behind App Service authentication. */
export function apiAuthLevel(env: NodeJS.ProcessEnv = process.env): 'function' | 'anonymous' {
    return apiAuthenticationMode(env) === 'EntraId' ? 'anonymous' : 'function';
}

export interface Caller extends JobRequester {
    roles: string[];
}

interface ClientPrincipal {
    auth_typ?: string;
    name_typ?: string;
    role_typ?: string;
    claims?: { typ: string; val: string }[];
}

const NAME_CLAIMS = ['name', 'preferred_username', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name'];
const ROLE_CLAIMS = ['roles', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role'];
const OID_CLAIMS = ['http://schemas.microsoft.com/identity/claims/objectidentifier', 'oid'];

/** The principal App Service authentication passed, or undefined when there is none or it cannot be read. */
export function parseClientPrincipal(header: string | null): Omit<Caller, 'via'> | undefined {
    if (header === null || header === '') return undefined;
    let principal: ClientPrincipal;
    try {
        principal = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as ClientPrincipal;
    } catch {
        return undefined;
    }
    const claims = Array.isArray(principal.claims) ? principal.claims : [];
    const values = (types: string[]) =>
        claims.filter((c) => typeof c?.val === 'string' && types.includes(c.typ)).map((c) => c.val);
    const name = values([...(principal.name_typ ? [principal.name_typ] : []), ...NAME_CLAIMS])[0];
    const roles = [...new Set(values([...(principal.role_typ ? [principal.role_typ] : []), ...ROLE_CLAIMS]))];
    const objectId = values(OID_CLAIMS)[0];
    if (name === undefined && objectId === undefined) return undefined;
    return { name: name ?? objectId!, roles, ...(objectId !== undefined ? { objectId } : {}) };
}

/** The caller of a request, as the mode sees it (UNAUTHORIZED in EntraId mode without a principal). */
export function callerOf(request: HttpRequest, env: NodeJS.ProcessEnv = process.env): Caller {
    if (apiAuthenticationMode(env) === 'FunctionKey') {
        // The key is the credential; a principal header is anyone's to send here and is never believed.
        return { name: 'function key', via: 'FunctionKey', roles: [API_ROLES.operator] };
    }
    const principal = parseClientPrincipal(request.headers.get('x-ms-client-principal'));
    if (!principal) {
        throw new HvrError(
            'UNAUTHORIZED',
            'This API needs a Microsoft Entra ID sign-in (App Service authentication); no principal came with the request.',
        );
    }
    return { ...principal, via: 'EntraId' };
}

/** Reading methods need a reader (or operator); every other method needs an operator. */
export function requiredRole(method: string): string {
    return method === 'GET' || method === 'HEAD' ? API_ROLES.reader : API_ROLES.operator;
}

/** The caller, once they may do what the request asks (FORBIDDEN naming the role they lack). */
export function authorize(request: HttpRequest, env: NodeJS.ProcessEnv = process.env): Caller {
    const caller = callerOf(request, env);
    const role = requiredRole(request.method);
    const allowed =
        caller.roles.includes(API_ROLES.operator) || (role === API_ROLES.reader && caller.roles.includes(role));
    if (!allowed) {
        throw new HvrError(
            'FORBIDDEN',
            `${caller.name} may not ${request.method} this resource: it needs the app role ${role}` +
                (role === API_ROLES.reader ? ` or ${API_ROLES.operator}` : '') +
                ` (has: ${caller.roles.join(', ') || 'none'}).`,
        );
    }
    return caller;
}

/** Who started a job: what the job row records. */
export function requesterOf(request: HttpRequest): JobRequester {
    const { roles: _roles, ...requester } = authorize(request);
    return requester;
}
