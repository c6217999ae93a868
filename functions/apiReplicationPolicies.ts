import { app, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { HvrError } from '../shared/errors';
import { ports } from '../shared/ports';
import { validatePolicyName, validateReplicationPolicy } from '../shared/policy/replicationPolicy';
import { deletePolicy, getPolicy, listPolicies, putPolicy, StoredReplicationPolicy } from '../shared/state/policies';
import { listProtectedItems, stateScope } from '../shared/state/protectedItems';
import { jsonResponse, readJsonBody, routeParam, withErrors } from './apiHttp';
import { apiAuthLevel } from './apiCaller';

/** `/api/replicationPolicies`: the replication policies VMs are protected with. */

function present(policy: StoredReplicationPolicy): { name: string; etag: string; properties: Record<string, unknown> } {
    const { etag, name, ...properties } = policy;
    return { name, etag, properties };
}

export async function listReplicationPolicies(_request: HttpRequest): Promise<HttpResponseInit> {
    const policies = await listPolicies(stateScope());
    return jsonResponse(200, { value: policies.map(present) });
}

export async function replicationPolicy(request: HttpRequest, _context: InvocationContext): Promise<HttpResponseInit> {
    const name = validatePolicyName(routeParam(request, 'name'));
    const scope = stateScope();
    switch (request.method) {
        case 'GET': {
            const policy = await getPolicy(scope, name);
            if (!policy) throw new HvrError('NOT_FOUND', `Replication policy ${name} does not exist.`);
            return jsonResponse(200, present(policy), { ETag: policy.etag });
        }
        case 'PUT': {
            const body = await readJsonBody(request);
            // Accept ASR's envelope ({ properties: {...} }) as well as the bare settings.
            const settings = typeof body === 'object' && body !== null && 'properties' in body ? body.properties : body;
            const policy = validateReplicationPolicy(settings, name);
            const ifMatch = request.headers.get('if-match') ?? undefined;
            const at = ports().clock.now().toISOString();
            const { policy: stored, created } = await putPolicy(scope, policy, at, ifMatch ? { ifMatch } : {});
            return jsonResponse(created ? 201 : 200, present(stored), { ETag: stored.etag });
        }
        case 'DELETE': {
            const users = (await listProtectedItems(scope)).filter((item) => item.policyName === name);
            if (users.length > 0) {
                throw new HvrError(
                    'CONFLICT',
                    `Replication policy ${name} is used by ${users.length} protected item(s) (${users
                        .slice(0, 5)
                        .map((u) => u.vmId)
                        .join(', ')}); disable their protection first.`,
                );
            }
            const deleted = await deletePolicy(scope, name);
            if (!deleted) throw new HvrError('NOT_FOUND', `Replication policy ${name} does not exist.`);
            return { status: 204 };
        }
        default:
            throw new HvrError('VALIDATION_FAILED', `Method ${request.method} is not supported here.`);
    }
}

/** Function keys, or none behind App Service authentication (apiCaller.ts). */
const API_AUTH_LEVEL = apiAuthLevel();

app.http('apiListReplicationPolicies', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationPolicies',
    handler: withErrors(listReplicationPolicies),
});

app.http('apiReplicationPolicy', {
    methods: ['GET', 'PUT', 'DELETE'],
    authLevel: API_AUTH_LEVEL,
    route: 'replicationPolicies/{name}',
    handler: withErrors(replicationPolicy),
});
