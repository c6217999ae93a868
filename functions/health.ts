import { app, HttpRequest, HttpResponseInit } from '@azure/functions';

/** Liveness for load balancers and the local host: answers without touching storage. */
export async function health(_request: HttpRequest): Promise<HttpResponseInit> {
    return { status: 200, jsonBody: { status: 'ok', service: 'hyperv-replica-azure' } };
}

app.http('health', { methods: ['GET'], authLevel: 'anonymous', route: 'health', handler: health });
