import { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { DEFAULT_PROVIDER_SITES_TABLES, ProviderSitesTable } from '../shared/contracts/providerSites';
import { ErrorCode, HvrError } from '../shared/errors';
import { StateScope } from '../shared/state/protectedItems';
import { authorize } from './apiCaller';

/**
 * What every management API handler shares: JSON bodies, and errors as `{ error: { code, message } }` with the
 * HTTP status their code implies. This file registers no function.
 */

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
    VALIDATION_FAILED: 400,
    PREREQUISITE_FAILED: 400,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    VM_NOT_FOUND: 404,
    REPLICA_NOT_FOUND: 404,
    CONFLICT: 409,
    CONCURRENT_UPDATE: 412,
    BODY_TOO_LARGE: 413,
    TIMEOUT: 503,
    TRANSIENT: 503,
};

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponseInit {
    return { status, jsonBody: body, headers: { 'Content-Type': 'application/json', ...headers } };
}

export function errorResponse(status: number, code: string, message: string): HttpResponseInit {
    return jsonResponse(status, { error: { code, message } });
}

/** Maps anything thrown to a JSON error; unexpected errors are logged and reported without their details. */
export function responseForError(err: unknown, context: InvocationContext): HttpResponseInit {
    if (err instanceof HvrError) {
        const status = STATUS_BY_CODE[err.code] ?? 500;
        if (status >= 500) context.error(`${err.code}: ${err.message}`);
        return errorResponse(status, err.code, err.message);
    }
    context.error(err);
    return errorResponse(500, 'INTERNAL', `Internal error (invocation ${context.invocationId}); see the logs.`);
}

/**
 * Wraps a management handler: the caller must be allowed to do what the request asks (apiCaller.ts: nothing to
 * check with function keys, the Entra app role behind App Service authentication), and every failure becomes a
 * JSON error.
 */
export function withErrors(
    handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>,
): (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit> {
    return async (request, context) => {
        try {
            authorize(request);
            return await handler(request, context);
        } catch (err) {
            return responseForError(err, context);
        }
    };
}

/**
 * Largest request body a management call accepts (a VM description with 17 disks is a few KiB). The one owner
 * of that rule: every handler reads its body through `readJsonBody`. (The platform's own limit, 100 MB, is the
 * Functions host's; the local host applies it before a handler runs.)
 */
export const MAX_BODY_BYTES = 64 * 1024;

/** The refusal of a body over MAX_BODY_BYTES, naming the body's real size in bytes. */
export function bodyTooLarge(sizeBytes: number): HvrError {
    return new HvrError('BODY_TOO_LARGE', `body is ${sizeBytes} bytes; at most ${MAX_BODY_BYTES} are accepted.`, {
        sizeBytes,
        limitBytes: MAX_BODY_BYTES,
    });
}

/** The request's JSON body; BODY_TOO_LARGE over the limit, VALIDATION_FAILED when it is missing or not JSON. */
export async function readJsonBody(request: HttpRequest): Promise<unknown> {
    // Bytes, not text: decoding first would count a binary body's replacement characters, not its size.
    const bytes = Buffer.from(await request.arrayBuffer());
    if (bytes.byteLength > MAX_BODY_BYTES) throw bodyTooLarge(bytes.byteLength);
    const text = bytes.toString('utf8');
    if (text.trim() === '') throw new HvrError('VALIDATION_FAILED', 'body is empty; a JSON object is expected.');
    try {
        return JSON.parse(text) as unknown;
    } catch (err) {
        throw new HvrError('VALIDATION_FAILED', `body is not JSON: ${(err as Error).message}`);
    }
}

/** A required route parameter. */
export function routeParam(request: HttpRequest, name: string): string {
    const value = request.params[name];
    if (value === undefined || value === '')
        throw new HvrError('VALIDATION_FAILED', `${name} is missing from the URL.`);
    return value;
}

/** The app's base URL as the caller sees it, for Location headers. */
export function baseUrl(request: HttpRequest): string {
    const url = new URL(request.url);
    return `${url.protocol}//${url.host}`;
}

/** Site keys and VM ownership for the provider channel, in the same scope (table prefix) as the other state. */
export function providerSites(scope: StateScope): ProviderSitesTable {
    return new ProviderSitesTable(scope.conn, {
        sites: `${scope.tablePrefix}${DEFAULT_PROVIDER_SITES_TABLES.sites}`,
        messageIds: `${scope.tablePrefix}${DEFAULT_PROVIDER_SITES_TABLES.messageIds}`,
    });
}

const ACTIVE: ReadonlySet<string> = new Set(['Running', 'Pending', 'ContinuedAsNew']);

/** 202 for a started (or already running) job: where to follow it, as ASR's async operations answer. */
export function accepted(
    request: HttpRequest,
    jobId: string,
    instanceId: string,
    extra: Record<string, unknown> = {},
): HttpResponseInit {
    const location = `${baseUrl(request)}/api/replicationJobs/${encodeURIComponent(jobId)}`;
    return jsonResponse(
        202,
        { jobId, instanceId, statusUrl: location, ...extra },
        { Location: location, 'Retry-After': '10' },
    );
}

/** Whether an orchestration instance is still running (a repeated command must not start a second one). */
export async function isActive(client: df.DurableClient, instanceId: string): Promise<boolean> {
    const status = await client.getStatus(instanceId).catch(() => undefined);
    return status?.runtimeStatus !== undefined && ACTIVE.has(status.runtimeStatus);
}
