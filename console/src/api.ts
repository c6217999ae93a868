/**
 * The console's only way to the server: the management API on the same origin. Locally it sends the function
 * key it was opened with (the URL's fragment `#key=…`, kept in this tab's sessionStorage, never in a URL the
 * server sees); in Azure it sends nothing and App Service authentication's session cookie signs it in.
 */

const KEY_STORAGE = 'hvr.functionKey';
/** Every call is bounded: a hung server shows an error, never a spinner for ever. */
const TIMEOUT_MS = 15_000;

export class ApiError extends Error {
    constructor(
        readonly status: number,
        readonly code: string,
        message: string,
    ) {
        super(message);
    }
}

/** Takes the key out of the fragment (so it does not stay in the address bar or history) into the tab's storage. */
export function adoptKeyFromFragment(): void {
    const match = /(?:^#|&)key=([^&]*)/.exec(location.hash);
    if (!match) return;
    sessionStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]!));
    const rest = location.hash.replace(/(^#|&)key=[^&]*/, '$1').replace(/^#&/, '#');
    history.replaceState(null, '', location.pathname + location.search + (rest === '#' ? '#/' : rest));
}

export function functionKey(): string | null {
    return sessionStorage.getItem(KEY_STORAGE);
}

/** The API's base: the console lives at <origin>/api/console/, the API at <origin>/api. */
export const API_BASE = location.pathname.replace(/\/console\/.*$/, '');

let settleSignIn: { resolve: () => void; reject: (e: ApiError) => void } | undefined;
/**
 * Whether the page is signed in, from the API's first answer (no request of its own for it, so the first view's
 * data is the only thing the host serves at start): rejected with the 401/403 when the credential is refused.
 */
export const signedIn: Promise<void> = new Promise((resolve, reject) => {
    settleSignIn = { resolve, reject };
});

const prefetched = new Map<string, Promise<unknown>>();

/** Starts a GET before the view that needs it is rendered; that view's first `api('GET', path)` takes it. */
export function prefetch(path: string): void {
    const pending = api('GET', path);
    pending.catch(() => undefined);
    prefetched.set(path, pending);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const early = method === 'GET' ? prefetched.get(path) : undefined;
    if (early) {
        prefetched.delete(path);
        return early as Promise<T>;
    }
    const headers: Record<string, string> = { Accept: 'application/json' };
    const key = functionKey();
    if (key) headers['x-functions-key'] = key;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    let response: Response;
    try {
        response = await fetch(`${API_BASE}${path}`, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            credentials: 'same-origin',
            signal: controller.signal,
        });
    } catch (err) {
        throw new ApiError(
            0,
            controller.signal.aborted ? 'TIMEOUT' : 'NETWORK',
            controller.signal.aborted
                ? `${method} ${path} did not answer within ${TIMEOUT_MS / 1000} s.`
                : `${method} ${path} failed: ${(err as Error).message}`,
        );
    } finally {
        clearTimeout(timer);
    }
    const text = await response.text();
    const json: unknown = text === '' ? undefined : safeJson(text);
    if (!response.ok) {
        const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
        const failure = new ApiError(
            response.status,
            error?.code ?? `HTTP_${response.status}`,
            error?.message ?? `${method} ${path} answered ${response.status}.`,
        );
        if (response.status === 401 || response.status === 403) settleSignIn?.reject(failure);
        else settleSignIn?.resolve();
        throw failure;
    }
    settleSignIn?.resolve();
    return json as T;
}

function safeJson(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

/** App Service authentication's sign-in, back to where the operator was. */
export function signInUrl(): string {
    return `/.auth/login/aad?post_login_redirect_uri=${encodeURIComponent(location.pathname + location.hash)}`;
}

/** Who is signed in, from App Service authentication (Azure); null locally or when signed out. */
export async function signedInUser(): Promise<{ name: string; roles: string[] } | null> {
    try {
        const response = await fetch('/.auth/me', { credentials: 'same-origin' });
        if (!response.ok) return null;
        const body = (await response.json()) as { user_claims?: { typ: string; val: string }[]; user_id?: string }[];
        const first = body[0];
        if (!first) return null;
        const claims = first.user_claims ?? [];
        const name = claims.find((c) => c.typ === 'name')?.val ?? first.user_id ?? 'signed in';
        const roles = claims.filter((c) => c.typ === 'roles').map((c) => c.val);
        return { name, roles };
    } catch {
        return null;
    }
}

// ---- the shapes the API serves (docs/api.md) ----

export interface HealthReason {
    code: string;
    severity: 'Warning' | 'Critical';
    message: string;
    errorCode?: string;
}

export interface Disk {
    diskId: string;
    sizeBytes: number;
    logicalSectorBytes?: number;
    isOsDisk: boolean;
    replicatedBytes?: number;
    repairing?: boolean;
    [k: string]: unknown;
}

export interface ItemProperties {
    siteId: string;
    vmName: string;
    policyName: string;
    generation?: number;
    protectionState: string;
    protectionStateDescription: string;
    replicationHealth: 'Normal' | 'Warning' | 'Critical';
    healthReasons: HealthReason[];
    rpoSeconds: number | null;
    lastCapturedAt?: string;
    lastRecoveryPointId?: string;
    lastRecoveryPointAt?: string;
    resynchronizationState?: string;
    initialReplicationProgress?: Record<string, number>;
    testFailoverState?: string;
    testFailoverStateDescription?: string;
    currentJobId?: string;
    allowedOperations: string[];
    disks: Disk[];
}

export interface Item {
    name: string;
    properties: ItemProperties;
}

export interface JobTask {
    name: string;
    state: string;
    startTime?: string;
    endTime?: string;
    detail?: string;
}

export interface Job {
    jobId: string;
    kind: string;
    displayName: string;
    vmId: string;
    state: string;
    tasks: JobTask[];
    errors: { code: string; message: string; recoverable: boolean; at: string; task?: string }[];
    createdAt: string;
    startTime?: string;
    endTime?: string;
    instanceId?: string;
    requestedBy?: { name: string; via: string };
    /** What the API allows on the job now: 'Cancel' while a cancellable kind runs, 'Restart' once it failed. */
    actions?: string[];
}

export interface RecoveryPoint {
    name: string;
    properties: { recoveryPointTime: string; recoveryPointType: string; cycleId: string };
}

export interface RpoHistory {
    since: string;
    until: string;
    rpoSecondsNow: number | null;
    value: { at: string; rpoSeconds: number }[];
}

export interface ReplicationEvent {
    eventId: string;
    occurredAt: string;
    kind: string;
    severity: string;
    message: string;
}

export interface Site {
    siteId: string;
    name: string;
    kind: string;
    timeZone: string;
    registeredAt: string;
}

export interface Provider {
    providerId: string;
    kind?: string;
    hostName?: string;
    providerVersion?: string;
    registeredAt?: string;
    lastHeartbeatAt?: string;
    vmCount?: number;
}

export interface Policy {
    name: string;
    properties: Record<string, unknown>;
}

export interface NetworkMapping {
    name: string;
    properties: Record<string, unknown>;
}

export interface Accepted {
    jobId?: string;
    instanceId?: string;
    alreadyRunning?: boolean;
}

export type List<T> = { value: T[] };
