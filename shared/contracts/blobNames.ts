import { HvrError } from '../errors';
import { ID_PATTERN, ID_RULE, LOG_ID_PATTERN } from './ids';

/**
 * Every blob name of the replica storage account, built and parsed side by side so the two cannot drift:
 * the provider uploads a log to `replica-logs/{siteId}/{vmId}/{diskId}/{sequence}-{logId}.hrl` (the name its
 * UploadGrant carries), the merge reads the same name back, and applies the log to
 * `replicas/{vmId}/{diskId}.vhd`. docs/provider-contract.md restates these; a test checks it.
 */

/** Where providers upload logs (write-only grants: the container must exist before the first upload). */
export const REPLICA_LOGS_CONTAINER = 'replica-logs';
/** Where the merge moves logs it refuses, under the same name, with the reason in the metadata. */
export const QUARANTINE_CONTAINER = 'replica-logs-quarantine';
/** The replica page blobs (fixed VHDs), their snapshots (recovery points), digest indexes and manifests. */
export const REPLICAS_CONTAINER = 'replicas';
/** Event Grid's dead letters for BlobCreated events of uploaded logs it could not deliver. */
export const EVENT_GRID_DEADLETTER_CONTAINER = 'replica-logs-deadletter';

/** An uploaded log's place, as its blob name says: `{siteId}/{vmId}/{diskId}/{sequence}-{logId}.hrl`. */
export interface LogBlobName {
    siteId: string;
    vmId: string;
    diskId: string;
    /** Position of the log in the disk's chain, 1-based: the replica's sequence number once it is applied. */
    sequence: number;
    /** The log's MS-HRL UniqueId, lower case (its header must carry the same). */
    logId: string;
}

/** The largest chain position a name may carry: whole decimal digits, no leading zero, a safe integer. */
export const MAX_LOG_SEQUENCE = Number.MAX_SAFE_INTEGER;

const SEGMENT = new RegExp(ID_PATTERN);
const LOG_FILE = new RegExp(`^([1-9][0-9]{0,15})-(${LOG_ID_PATTERN.slice(1, -1)})\\.hrl$`);
const LOG_ID = new RegExp(LOG_ID_PATTERN);

function invalidName(name: string, why: string): HvrError {
    return new HvrError(
        'VALIDATION_FAILED',
        `Log blob "${name}" ${why}; expected {siteId}/{vmId}/{diskId}/{sequence}-{logId}.hrl.`,
        { name },
    );
}

/** The blob name (in REPLICA_LOGS_CONTAINER) of one log; VALIDATION_FAILED for a part a name cannot carry. */
export function logBlobName(log: LogBlobName): string {
    for (const [what, value] of [
        ['site id', log.siteId],
        ['VM id', log.vmId],
        ['disk id', log.diskId],
    ] as const) {
        if (!SEGMENT.test(value)) {
            throw new HvrError('VALIDATION_FAILED', `A log blob's ${what} must be ${ID_RULE}; got "${value}".`);
        }
    }
    if (!Number.isSafeInteger(log.sequence) || log.sequence < 1) {
        throw new HvrError('VALIDATION_FAILED', `A log's sequence must be a whole number ≥ 1; got ${log.sequence}.`);
    }
    if (!LOG_ID.test(log.logId)) {
        throw new HvrError('VALIDATION_FAILED', `A log's logId must be its HRL UniqueId (a GUID); got "${log.logId}".`);
    }
    return `${log.siteId}/${log.vmId}/${log.diskId}/${log.sequence}-${log.logId.toLowerCase()}.hrl`;
}

/** Reads a log blob name back; VALIDATION_FAILED naming the part that is wrong. */
export function parseLogBlobName(name: string): LogBlobName {
    const parts = name.split('/');
    if (parts.length !== 4) throw invalidName(name, `has ${parts.length} path segments`);
    const [siteId, vmId, diskId, file] = parts as [string, string, string, string];
    for (const [what, value] of [
        ['site id', siteId],
        ['VM id', vmId],
        ['disk id', diskId],
    ] as const) {
        if (!SEGMENT.test(value)) throw invalidName(name, `has an invalid ${what} "${value}" (${ID_RULE})`);
    }
    const m = LOG_FILE.exec(file);
    if (!m) throw invalidName(name, `has an invalid file name "${file}"`);
    const sequence = Number(m[1]);
    if (!Number.isSafeInteger(sequence)) throw invalidName(name, 'has a sequence number out of range');
    return { siteId, vmId, diskId, sequence, logId: m[2]!.toLowerCase() };
}

/** The prefix under which the logs of one disk, or of one position of its chain, are found. */
export function logBlobPrefix(siteId: string, vmId: string, diskId: string, sequence?: number): string {
    return `${siteId}/${vmId}/${diskId}/${sequence === undefined ? '' : `${sequence}-`}`;
}

/** The upload path an UploadGrant names: `replica-logs/{log blob name}`. */
export function logUploadPath(log: LogBlobName): string {
    return `${REPLICA_LOGS_CONTAINER}/${logBlobName(log)}`;
}

/** The page blob of one replica disk, in REPLICAS_CONTAINER: `{vmId}/{diskId}.vhd`. */
export function replicaBlobName(vmId: string, diskId: string): string {
    return `${vmId}/${diskId}.vhd`;
}

/** Reads a replica blob name back; undefined for any other blob of the container (indexes, manifests). */
export function parseReplicaBlobName(name: string): { vmId: string; diskId: string } | undefined {
    const m = /^([^/]+)\/([^/]+)\.vhd$/.exec(name);
    if (!m || !SEGMENT.test(m[1]!) || !SEGMENT.test(m[2]!)) return undefined;
    return { vmId: m[1]!, diskId: m[2]! };
}

/**
 * Every container the replica storage account has, as infra/main.bicep creates them (a test compares the two):
 * the local host creates the same ones at start, so a provider's first upload through a write-only grant finds
 * its container.
 */
export const REPLICA_STORAGE_CONTAINERS = [
    REPLICA_LOGS_CONTAINER,
    REPLICAS_CONTAINER,
    QUARANTINE_CONTAINER,
    EVENT_GRID_DEADLETTER_CONTAINER,
] as const;
