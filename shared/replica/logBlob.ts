import { HvrError } from '../errors';

/** Where the provider uploads logs, and where the merge moves logs it refuses. */
export const REPLICA_LOGS_CONTAINER = 'replica-logs';
export const QUARANTINE_CONTAINER = 'replica-logs-quarantine';
export const REPLICAS_CONTAINER = 'replicas';

/** An uploaded log's place, read from its blob name `{siteId}/{vmId}/{diskId}/{n}-{logUniqueId}.hrl`. */
export interface LogBlobName {
    siteId: string;
    vmId: string;
    diskId: string;
    /** Position of the log in the disk's chain, 1-based: the replica's sequence number once it is applied. */
    sequence: number;
    /** The log's UniqueId (lower case), which its header must carry too. */
    logId: string;
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const FILE = /^([1-9][0-9]{0,14})-([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\.hrl$/;

/** Parses a log blob name; VALIDATION_FAILED naming the part that is wrong. */
export function parseLogBlobName(name: string): LogBlobName {
    const parts = name.split('/');
    const fail = (why: string): never => {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Log blob "${name}" ${why}; expected {siteId}/{vmId}/{diskId}/{n}-{logUniqueId}.hrl.`,
            { name },
        );
    };
    if (parts.length !== 4) fail(`has ${parts.length} path segments`);
    const [siteId, vmId, diskId, file] = parts as [string, string, string, string];
    for (const [what, value] of [
        ['site id', siteId],
        ['VM id', vmId],
        ['disk id', diskId],
    ] as const) {
        if (!SEGMENT.test(value)) fail(`has an invalid ${what} "${value}"`);
    }
    const m = FILE.exec(file);
    if (!m) return fail(`has an invalid file name "${file}"`);
    const sequence = Number(m[1]);
    if (!Number.isSafeInteger(sequence)) fail(`has a sequence number out of range`);
    return { siteId, vmId, diskId, sequence, logId: m[2]!.toLowerCase() };
}

export function logBlobName(log: LogBlobName): string {
    return `${log.siteId}/${log.vmId}/${log.diskId}/${log.sequence}-${log.logId}.hrl`;
}

/** The prefix under which the logs of one disk, or of one position of its chain, are found. */
export function logBlobPrefix(siteId: string, vmId: string, diskId: string, sequence?: number): string {
    return `${siteId}/${vmId}/${diskId}/${sequence === undefined ? '' : `${sequence}-`}`;
}

/**
 * What the provider tells about a log in its blob metadata (Azure metadata names are case-insensitive
 * C# identifiers; we use lower case):
 * - `cycleid`: the replication cycle the log belongs to (same value on every disk's log of the cycle);
 * - `consistency`: `crash` or `app` (the cycle ends an application-consistent point);
 * - `capturedat`: ISO 8601 instant the provider captured the cycle (RPO is measured from it);
 * - `resync`: `true` for a resynchronization log, which starts a new chain.
 */
export interface LogMetadata {
    cycleId?: string;
    consistency: 'crash' | 'app';
    capturedAt?: string;
    resync: boolean;
}

export const LOG_METADATA_KEYS = {
    cycleId: 'cycleid',
    consistency: 'consistency',
    capturedAt: 'capturedat',
    resync: 'resync',
} as const;

/** Reads the provider's metadata; VALIDATION_FAILED for a value that is present but wrong. */
export function parseLogMetadata(metadata: Record<string, string> | undefined): LogMetadata {
    const lower: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata ?? {})) lower[k.toLowerCase()] = v;
    const consistency = lower[LOG_METADATA_KEYS.consistency] ?? 'crash';
    if (consistency !== 'crash' && consistency !== 'app') {
        throw new HvrError('VALIDATION_FAILED', `Log metadata consistency="${consistency}" is not crash or app.`);
    }
    const capturedAt = lower[LOG_METADATA_KEYS.capturedAt];
    if (capturedAt !== undefined && Number.isNaN(Date.parse(capturedAt))) {
        throw new HvrError('VALIDATION_FAILED', `Log metadata capturedat="${capturedAt}" is not an ISO 8601 time.`);
    }
    const resync = lower[LOG_METADATA_KEYS.resync];
    if (resync !== undefined && resync !== 'true' && resync !== 'false') {
        throw new HvrError('VALIDATION_FAILED', `Log metadata resync="${resync}" is not true or false.`);
    }
    const cycleId = lower[LOG_METADATA_KEYS.cycleId];
    if (cycleId !== undefined && !/^[A-Za-z0-9._:-]{1,128}$/.test(cycleId)) {
        throw new HvrError('VALIDATION_FAILED', `Log metadata cycleid="${cycleId}" is not a plain id.`);
    }
    return {
        cycleId,
        consistency,
        capturedAt: capturedAt === undefined ? undefined : new Date(capturedAt).toISOString(),
        resync: resync === 'true',
    };
}

export function logMetadataToBlob(meta: Partial<LogMetadata>): Record<string, string> {
    const out: Record<string, string> = {};
    if (meta.cycleId !== undefined) out[LOG_METADATA_KEYS.cycleId] = meta.cycleId;
    if (meta.consistency !== undefined) out[LOG_METADATA_KEYS.consistency] = meta.consistency;
    if (meta.capturedAt !== undefined) out[LOG_METADATA_KEYS.capturedAt] = meta.capturedAt;
    if (meta.resync) out[LOG_METADATA_KEYS.resync] = 'true';
    return out;
}
