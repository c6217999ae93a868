import { HvrError } from '../../shared/errors';

/** What the simulator reads of a protected item (GET /api/replicationProtectedItems/{vmId}). */
export interface ProtectedItemView {
    name: string;
    properties: {
        siteId?: string;
        protectionState?: string;
        protectionStateDescription?: string;
        replicationHealth?: string;
        healthReasons?: { code: string; severity?: string; message?: string }[];
        resynchronizationState?: string;
        resyncReason?: string;
        lastRecoveryPointId?: string;
        currentJobId?: string;
        initialReplicationProgress?: Record<string, number>;
        [key: string]: unknown;
    };
}

export interface JobView {
    jobId: string;
    kind: string;
    displayName: string;
    state: string;
    tasks: { name: string; state: string; detail?: string }[];
    errors: { code: string; message: string; task?: string }[];
}

export interface RecoveryPointView {
    name: string;
    properties: { cycleId: string; recoveryPointTime?: string; recoveryPointType?: string };
}

/** A drill or failover of a VM as GET .../drills lists it (the fields the simulator reads). */
export interface DrillView {
    name: string;
    properties: {
        state: string;
        jobId: string;
        recoveryPointId: string;
        cycleId: string;
        infrastructure: string;
        /** Blob names in container `failover`: `{vmId}/{drillId}/{diskId}.vhd`. */
        failoverBlobs: string[];
        cleanedUp: boolean;
        error?: { code: string; message: string };
        cleanupError?: { code: string; message: string };
        /** Failover: seconds of writes the restored point lacks (0 after a planned failover). */
        rpoSeconds?: number;
        recoveryPointHistory?: { recoveryPointId: string; appliedAt: string; jobId: string }[];
    };
}

/** The 202 answer of a failover action. */
export interface FailoverAccepted {
    jobId: string;
    instanceId: string;
    drillId?: string;
    recoveryPointId?: string;
}

export interface EnableProtectionRequest {
    siteId: string;
    policyName: string;
    vm: {
        name: string;
        generation: 1 | 2;
        disks: { diskId: string; sizeBytes: number; logicalSectorBytes: number; isOsDisk: boolean }[];
    };
}

/** Bounds each API call: the pipeline answers in milliseconds locally; a hung call must not hang the run. */
const CALL_TIMEOUT_MS = 30_000;

/**
 * The management API as an operator (or the portal) calls it, over HTTP with the function key. Errors come
 * back as HvrError with the API's code and message, prefixed by the call that failed.
 */
export class ManagementClient {
    constructor(
        readonly apiUrl: string,
        readonly functionKey: string,
    ) {}

    private async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
        const url = `${this.apiUrl.replace(/\/+$/, '')}/${path}`;
        let response: Response;
        try {
            response = await fetch(url, {
                method,
                headers: {
                    'x-functions-key': this.functionKey,
                    ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
                },
                body: body !== undefined ? JSON.stringify(body) : undefined,
                signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
            });
        } catch (err) {
            throw new HvrError('TRANSIENT', `${method} ${url}: ${(err as Error).message}`, undefined, { cause: err });
        }
        const text = await response.text();
        let parsed: unknown = undefined;
        try {
            parsed = text === '' ? undefined : JSON.parse(text);
        } catch {
            parsed = text;
        }
        if (!response.ok) {
            const error = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
            const code = response.status === 404 ? 'NOT_FOUND' : response.status >= 500 ? 'TRANSIENT' : 'CONFLICT';
            throw new HvrError(
                code,
                `${method} /${path} answered ${response.status}: ${error?.code ?? ''} ${error?.message ?? text.slice(0, 300)}`.trim(),
                { status: response.status, apiCode: error?.code },
            );
        }
        return { status: response.status, body: parsed as T };
    }

    /** Registers (or updates) a site. Returns the API's answer as is, including a site key if it issues one. */
    async registerSite(site: {
        siteId: string;
        name: string;
        kind: 'HyperVSite' | 'VmmServer';
        timeZone: string;
    }): Promise<Record<string, unknown>> {
        return (await this.call<Record<string, unknown>>('POST', 'sites', site)).body;
    }

    async putPolicy(name: string, settings: Record<string, unknown>): Promise<void> {
        await this.call('PUT', `replicationPolicies/${encodeURIComponent(name)}`, settings);
    }

    async enableProtection(vmId: string, request: EnableProtectionRequest): Promise<{ jobId: string }> {
        return (
            await this.call<{ jobId: string }>('PUT', `replicationProtectedItems/${encodeURIComponent(vmId)}`, request)
        ).body;
    }

    async protectedItem(vmId: string): Promise<ProtectedItemView> {
        return (await this.call<ProtectedItemView>('GET', `replicationProtectedItems/${encodeURIComponent(vmId)}`))
            .body;
    }

    async recoveryPoints(vmId: string): Promise<RecoveryPointView[]> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/recoveryPoints`;
        return (await this.call<{ value: RecoveryPointView[] }>('GET', path)).body.value;
    }

    async jobs(vmId: string): Promise<JobView[]> {
        return (await this.call<{ value: JobView[] }>('GET', `replicationJobs?vmId=${encodeURIComponent(vmId)}`)).body
            .value;
    }

    /** Starts a test failover to the latest recovery point, in an isolated network (no adapters named). */
    async testFailover(vmId: string, recoveryPoint: { type: string } = { type: 'Latest' }): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/testFailover`;
        return (await this.call<FailoverAccepted>('POST', path, { recoveryPoint })).body;
    }

    /** The whole answer of GET .../recoveryPoints (bytes held, the last clean point, each point's churn). */
    async recoveryPointsView<T>(vmId: string): Promise<T> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/recoveryPoints`;
        return (await this.call<T>('GET', path)).body;
    }

    async testFailoverCleanup(vmId: string, comments: string): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/testFailoverCleanup`;
        return (await this.call<FailoverAccepted>('POST', path, { comments })).body;
    }

    async drills(vmId: string): Promise<DrillView[]> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/drills`;
        return (await this.call<{ value: DrillView[] }>('GET', path)).body.value;
    }

    async job(jobId: string): Promise<JobView> {
        return (await this.call<JobView>('GET', `replicationJobs/${encodeURIComponent(jobId)}`)).body;
    }

    /** Planned or unplanned failover to the latest point, NICs on the site's only mapped network. */
    async failover(vmId: string, action: 'plannedFailover' | 'unplannedFailover'): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/${action}`;
        return (await this.call<FailoverAccepted>('POST', path, {})).body;
    }

    /** Change recovery point of a failed-over VM (before commit). */
    async applyRecoveryPoint(vmId: string, recoveryPointId: string): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/applyRecoveryPoint`;
        return (await this.call<FailoverAccepted>('POST', path, { recoveryPointId })).body;
    }

    /** Failback: ASR's planned failover from Azure to on-premises (direction RecoveryToPrimary). */
    async failback(vmId: string, dataSyncOption: 'ForDownTime' | 'ForSynchronization'): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/plannedFailover`;
        return (
            await this.call<FailoverAccepted>('POST', path, { failoverDirection: 'RecoveryToPrimary', dataSyncOption })
        ).body;
    }

    /** Re-protect after failback (reverse replication). */
    async reprotect(vmId: string): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/reProtect`;
        return (await this.call<FailoverAccepted>('POST', path, {})).body;
    }

    async failoverCommit(vmId: string): Promise<FailoverAccepted> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/failoverCommit`;
        return (await this.call<FailoverAccepted>('POST', path)).body;
    }

    async putNetworkMapping(
        siteId: string,
        sourceNetwork: string,
        mapping: { recoveryVnetId: string; recoverySubnets: string[] },
    ): Promise<void> {
        const path = `sites/${encodeURIComponent(siteId)}/networkMappings/${encodeURIComponent(sourceNetwork)}`;
        await this.call('PUT', path, mapping);
    }

    async requestResync(vmId: string): Promise<Record<string, unknown>> {
        const path = `replicationProtectedItems/${encodeURIComponent(vmId)}/resync`;
        return (await this.call<Record<string, unknown>>('POST', path)).body;
    }
}
