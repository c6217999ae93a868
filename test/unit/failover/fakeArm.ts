/* eslint-disable @typescript-eslint/no-explicit-any -- request bodies are read loosely in tests */
import { TokenCredential } from '@azure/core-auth';
import { createHttpHeaders, HttpClient, PipelineRequest, PipelineResponse } from '@azure/core-rest-pipeline';

/** A request the fake received: what the SDK put on the wire. */
export interface SentRequest {
    method: string;
    url: URL;
    /** Path without the api-version query, for readable assertions. */
    path: string;
    apiVersion: string | null;
    body?: any;
    authorization?: string;
}

export const fakeCredential: TokenCredential = {
    getToken: async () => ({ token: 'test-token', expiresOnTimestamp: Date.now() + 3600_000 }),
};

/**
 * Answers ARM requests the way the service does for the calls failover makes: PUT → 201 with an
 * Azure-AsyncOperation to poll (InProgress once, then Succeeded), then the resource on GET; DELETE → 202 with a
 * Location to poll; GET of a collection → `{ value }` of the resources it holds. `failNext` injects an error
 * response for the next request matching a method and a path fragment.
 */
export class FakeArm implements HttpClient {
    readonly sent: SentRequest[] = [];
    readonly resources = new Map<string, any>();
    private readonly operations = new Map<string, number>();
    private failures: { method: string; fragment: string; status: number; code: string }[] = [];
    private op = 0;

    failNext(method: string, fragment: string, status: number, code = 'Failed'): void {
        this.failures.push({ method, fragment, status, code });
    }

    /** Only the requests that change something (PUT/DELETE), as "METHOD path". */
    mutations(): string[] {
        return this.sent.filter((r) => r.method === 'PUT' || r.method === 'DELETE').map((r) => `${r.method} ${r.path}`);
    }

    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
        const url = new URL(request.url);
        const body = typeof request.body === 'string' && request.body !== '' ? JSON.parse(request.body) : undefined;
        const path = url.pathname;
        this.sent.push({
            method: request.method,
            url,
            path,
            apiVersion: url.searchParams.get('api-version'),
            body,
            authorization: request.headers.get('authorization'),
        });
        const respond = (status: number, json?: unknown, headers: Record<string, string> = {}): PipelineResponse => ({
            request,
            status,
            headers: createHttpHeaders({ 'content-type': 'application/json', ...headers }),
            bodyAsText: json === undefined ? '' : JSON.stringify(json),
        });
        const failure = this.failures.find((f) => f.method === request.method && path.includes(f.fragment));
        if (failure) {
            this.failures = this.failures.filter((f) => f !== failure);
            return respond(failure.status, { error: { code: failure.code, message: `injected ${failure.status}` } });
        }
        const key = path.toLowerCase();
        if (path.includes('/operations/')) {
            const polls = (this.operations.get(key) ?? 0) + 1;
            this.operations.set(key, polls);
            return respond(200, { status: polls < 2 ? 'InProgress' : 'Succeeded' });
        }
        const operationUrl = (): string => `https://management.azure.com${path}/operations/op${++this.op}`;
        switch (request.method) {
            case 'PUT': {
                const name = path.split('/').pop()!;
                const resource = {
                    ...body,
                    id: path,
                    name,
                    properties: { ...(body?.properties ?? {}), provisioningState: 'Succeeded' },
                };
                this.resources.set(key, resource);
                return respond(
                    201,
                    { ...resource, properties: { ...resource.properties, provisioningState: 'Creating' } },
                    { 'azure-asyncoperation': operationUrl(), 'retry-after': '0' },
                );
            }
            case 'DELETE': {
                if (!this.resources.delete(key)) return respond(204);
                return respond(202, undefined, { location: operationUrl(), 'retry-after': '0' });
            }
            case 'GET': {
                const resource = this.resources.get(key);
                if (resource) return respond(200, resource);
                const collection = [...this.resources.entries()]
                    .filter(([k]) => k.startsWith(`${key}/`) && !k.slice(key.length + 1).includes('/'))
                    .map(([, r]) => r);
                if (/\/providers\/microsoft\.[a-z]+\/[a-z]+$/i.test(path)) return respond(200, { value: collection });
                return respond(404, { error: { code: 'ResourceNotFound', message: `${path} not found` } });
            }
            default:
                return respond(405, { error: { code: 'MethodNotAllowed', message: request.method } });
        }
    }
}
