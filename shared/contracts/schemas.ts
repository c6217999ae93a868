import { ID_PATTERN, INSTANT_PATTERN, LOG_ID_PATTERN } from './ids';
import {
    FAILBACK_FAILURE_CODES,
    FAILBACK_PHASES,
    MAX_DIGEST_REQUEST_BASE64,
    ProviderCommandType,
    ProviderEvent,
} from './messages';
import { CONSISTENCIES } from './uploadMetadata';

/**
 * JSON Schemas (draft 2020-12) of every provider message, version 1. Each schema is self-contained (no $ref
 * across files) so a provider in any language can validate one message with one file. docs/schemas/*.json are
 * written from these (`node dist/shared/contracts/writeSchemas.js`); a unit test fails when they drift.
 *
 * Numbers are whole numbers only: the signature covers a canonical JSON form, and integers serialize the same
 * way in every language.
 */

export type JsonSchema = Record<string, unknown>;

const DRAFT = 'https://json-schema.org/draft/2020-12/schema';

/** The id rule is ./ids.ts's; re-exported for the readers of the schemas. */
export { ID_PATTERN } from './ids';
/** Standard base64 with padding: whole 4-character groups. */
const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';
const CLOCK_PATTERN = '^(?:[01][0-9]|2[0-3]):[0-5][0-9]$';
const MAX_SAFE = 9007199254740991;
const MAX_DISKS = 256;

const id = { type: 'string', pattern: ID_PATTERN };
const logId = {
    type: 'string',
    pattern: LOG_ID_PATTERN,
    description: "The log's MS-HRL header UniqueId (a GUID); it names the uploaded blob.",
};
const instant = { type: 'string', pattern: INSTANT_PATTERN, description: 'ISO 8601 instant in UTC (…Z).' };
const bytes = { type: 'integer', minimum: 0, maximum: MAX_SAFE };
const sequence = {
    type: 'integer',
    minimum: 1,
    maximum: MAX_SAFE,
    description: 'Position of the log in the disk chain, 1-based.',
};
const percentByDisk = {
    type: 'object',
    minProperties: 1,
    maxProperties: MAX_DISKS,
    propertyNames: { pattern: ID_PATTERN },
    additionalProperties: { type: 'integer', minimum: 0, maximum: 100 },
    description: 'Percent complete (0–100) per disk id.',
};
const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });
const copyFrequency = { enum: [30, 300, 900], description: 'Seconds between replication cycles.' };
const appConsistentHours = { type: 'integer', minimum: 0, maximum: 12 };

function message(
    kind: 'command' | 'event',
    type: string,
    description: string,
    properties: Record<string, unknown>,
    required: string[],
    example: Record<string, unknown>,
): JsonSchema {
    return {
        $schema: DRAFT,
        $id: `urn:hvr:provider-contract:v1:${kind}:${type}`,
        title: type,
        description,
        type: 'object',
        properties: { type: { const: type }, version: { const: 1 }, ...properties },
        required: ['type', 'version', ...required],
        additionalProperties: false,
        examples: [{ type, version: 1, ...example }],
    };
}

const VM = '6d3b6c8e-2f4a-4b7e-9a51-0c6f1e2d3a4b';
const DISK0 = 'c0a8f3e2-7b1d-4e5f-8a9b-1c2d3e4f5a6b';
const DISK1 = 'a1b2c3d4-e5f6-4789-8abc-def012345678';
const FAILBACK = 'fb-3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b';
const failbackPhase = {
    enum: [...FAILBACK_PHASES],
    description: 'Synchronize: the VM in Azure runs; Final: it is shut down.',
};
const failbackSeed = {
    type: 'string',
    pattern: '^[0-9a-f]{16}$',
    description: 'The digest seed, 16 lower-case hex digits.',
};
const failbackGeometry = {
    leafSizeBytes: { type: 'integer', minimum: 512, maximum: 1048576 },
    fanout: { type: 'integer', minimum: 2, maximum: 1024 },
    levels: { type: 'integer', minimum: 1, maximum: 6 },
};
const failbackRound = { type: 'integer', minimum: 1, maximum: 64 };
/** StartFailback and FailbackLogReady carry the same header: the failback, its phase and the digest tree's shape. */
const FAILBACK_DIGEST_REQUIRED = ['vmId', 'failbackId', 'phase', 'seed', 'leafSizeBytes', 'fanout', 'levels', 'disks'];
const FAILBACK_DIGEST_EXAMPLE = {
    vmId: VM,
    failbackId: FAILBACK,
    phase: 'Synchronize',
    seed: '9e3779b97f4a7c15',
    leafSizeBytes: 4096,
    fanout: 16,
    levels: 3,
};

/** Schemas of the commands providers send, by `type`. */
export const commandSchemas: Record<ProviderCommandType, JsonSchema> = {
    Register: message(
        'command',
        'Register',
        'A provider (Hyper-V host or VMM server) announces itself to its site. Session: site:{siteId}.',
        {
            providerId: id,
            kind: { enum: ['HyperVHost', 'VmmServer'] },
            hostName: text(255),
            providerVersion: text(64),
        },
        ['providerId', 'kind', 'hostName', 'providerVersion'],
        {
            providerId: 'hv-host-01',
            kind: 'HyperVHost',
            hostName: 'hv-host-01.contoso.local',
            providerVersion: '1.0.0',
        },
    ),
    Heartbeat: message(
        'command',
        'Heartbeat',
        'The provider is alive; per VM, the .hrl bytes still to upload per disk. Session: site:{siteId}.',
        {
            providerId: id,
            vms: {
                type: 'array',
                maxItems: 500,
                items: {
                    type: 'object',
                    properties: {
                        vmId: id,
                        pendingLogBytes: {
                            type: 'object',
                            maxProperties: MAX_DISKS,
                            propertyNames: { pattern: ID_PATTERN },
                            additionalProperties: bytes,
                        },
                    },
                    required: ['vmId', 'pendingLogBytes'],
                    additionalProperties: false,
                },
            },
        },
        ['providerId', 'vms'],
        { providerId: 'hv-host-01', vms: [{ vmId: VM, pendingLogBytes: { [DISK0]: 1048576, [DISK1]: 0 } }] },
    ),
    InitialReplicationProgress: message(
        'command',
        'InitialReplicationProgress',
        'Initial replication progress of one VM, percent per disk. Session: the VM id.',
        { vmId: id, disks: percentByDisk },
        ['vmId', 'disks'],
        { vmId: VM, disks: { [DISK0]: 42, [DISK1]: 100 } },
    ),
    CycleCompleted: message(
        'command',
        'CycleCompleted',
        'Every log of one replication cycle of one VM is uploaded. Session: the VM id.',
        {
            vmId: id,
            cycleId: id,
            consistency: { enum: [...CONSISTENCIES] },
            capturedAt: instant,
            logs: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: { diskId: id, sequence, logId, bytes },
                    required: ['diskId', 'sequence', 'logId', 'bytes'],
                    additionalProperties: false,
                },
            },
        },
        ['vmId', 'cycleId', 'consistency', 'capturedAt', 'logs'],
        {
            vmId: VM,
            cycleId: 'cycle-000123',
            consistency: 'AppConsistent',
            capturedAt: '2025-01-15T10:30:00Z',
            logs: [
                { diskId: DISK0, sequence: 123, logId: '9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a', bytes: 4194816 },
                { diskId: DISK1, sequence: 98, logId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d', bytes: 1024 },
            ],
        },
    ),
    UploadGrantRequest: message(
        'command',
        'UploadGrantRequest',
        'Asks for write-only upload URLs, one per log; answered with an UploadGrant event. Session: the VM id.',
        {
            vmId: id,
            requestId: id,
            uploads: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: { diskId: id, sequence, logId },
                    required: ['diskId', 'sequence', 'logId'],
                    additionalProperties: false,
                },
            },
        },
        ['vmId', 'requestId', 'uploads'],
        {
            vmId: VM,
            requestId: 'req-000124',
            uploads: [{ diskId: DISK0, sequence: 124, logId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' }],
        },
    ),
    ResyncProgress: message(
        'command',
        'ResyncProgress',
        'Resynchronization progress of one VM, percent per disk. Session: the VM id.',
        { vmId: id, resyncId: id, disks: percentByDisk },
        ['vmId', 'resyncId', 'disks'],
        { vmId: VM, resyncId: 'resync-7', disks: { [DISK0]: 60 } },
    ),
    ResyncCompleted: message(
        'command',
        'ResyncCompleted',
        'The provider sent every differing block of the listed disks. Session: the VM id.',
        {
            vmId: id,
            resyncId: id,
            diskIds: { type: 'array', minItems: 1, maxItems: MAX_DISKS, uniqueItems: true, items: id },
        },
        ['vmId', 'resyncId', 'diskIds'],
        { vmId: VM, resyncId: 'resync-7', diskIds: [DISK0] },
    ),
    ResyncDigestRequest: message(
        'command',
        'ResyncDigestRequest',
        "Asks for the next round of one disk's resync comparison: the digests of the nodes in `request` (the binary " +
            'digest request of docs/resync.md, base64). Answered with a StartResync naming the disk and round. ' +
            'Session: the VM id.',
        {
            vmId: id,
            resyncId: id,
            diskId: id,
            round: {
                type: 'integer',
                minimum: 2,
                maximum: 64,
                description: "The round of the answering manifest: the disk's previous round + 1.",
            },
            request: {
                type: 'string',
                // A request is at least a level byte and a range count.
                minLength: 4,
                maxLength: MAX_DIGEST_REQUEST_BASE64,
                pattern: BASE64_PATTERN,
                description:
                    'The digest request (level byte, LEB128 range count, LEB128 gap/count per range), standard ' +
                    'base64 with padding.',
            },
        },
        ['vmId', 'resyncId', 'diskId', 'round', 'request'],
        { vmId: VM, resyncId: 'resync-7', diskId: DISK0, round: 2, request: 'AQIgEDAg' },
    ),
    FailoverShutdownCompleted: message(
        'command',
        'FailoverShutdownCompleted',
        'Answers ShutdownForFailover: the VM is shut down and its final cycle (every write up to the shutdown) is ' +
            'uploaded, its logs carrying cycleid = cycleId. Session: the VM id.',
        {
            vmId: id,
            failoverId: id,
            shutDownAt: instant,
            cycleId: id,
            logs: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: { diskId: id, sequence, logId: id, bytes },
                    required: ['diskId', 'sequence', 'logId', 'bytes'],
                    additionalProperties: false,
                },
            },
        },
        ['vmId', 'failoverId', 'shutDownAt', 'cycleId', 'logs'],
        {
            vmId: VM,
            failoverId: 'fo-3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b',
            shutDownAt: '2025-01-15T10:31:12Z',
            cycleId: 'final-3f2a9c1e',
            logs: [{ diskId: DISK0, sequence: 125, logId: '2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a', bytes: 65536 }],
        },
    ),
    FailbackManifestUploaded: message(
        'command',
        'FailbackManifestUploaded',
        'Failback: the manifest a StartFailback disk entry asked for is uploaded to its manifestUrl. Session: the VM id.',
        { vmId: id, failbackId: id, phase: failbackPhase, diskId: id, round: failbackRound },
        ['vmId', 'failbackId', 'phase', 'diskId', 'round'],
        { vmId: VM, failbackId: FAILBACK, phase: 'Synchronize', diskId: DISK0, round: 1 },
    ),
    FailbackLogApplied: message(
        'command',
        'FailbackLogApplied',
        'Failback: every log of a FailbackLogReady is applied to the on-premises disks; the root digest of each ' +
            'disk after. Session: the VM id.',
        {
            vmId: id,
            failbackId: id,
            phase: failbackPhase,
            disks: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: {
                        diskId: id,
                        rootDigest: {
                            type: 'string',
                            pattern: '^[0-9a-f]{32}$',
                            description:
                                'XXH3-128 (lower-case hex) of the level-0 digests of the whole disk, with the failback seed.',
                        },
                    },
                    required: ['diskId', 'rootDigest'],
                    additionalProperties: false,
                },
            },
        },
        ['vmId', 'failbackId', 'phase', 'disks'],
        {
            vmId: VM,
            failbackId: FAILBACK,
            phase: 'Final',
            disks: [{ diskId: DISK0, rootDigest: '5f0c3a1e9b7d4c2a8e6f1b3d5a7c9e0f' }],
        },
    ),
    FailbackCompleted: message(
        'command',
        'FailbackCompleted',
        'Failback: the VM runs on premises again (answers CompleteFailback). Session: the VM id.',
        { vmId: id, failbackId: id, startedAt: instant },
        ['vmId', 'failbackId', 'startedAt'],
        { vmId: VM, failbackId: FAILBACK, startedAt: '2025-01-15T11:02:40Z' },
    ),
    FailbackFailed: message(
        'command',
        'FailbackFailed',
        'Failback: the provider cannot go on (a link expired, a disk does not match, a write failed); whether the ' +
            'on-premises disks are as before the failback. Session: the VM id.',
        {
            vmId: id,
            failbackId: id,
            phase: failbackPhase,
            code: { enum: [...FAILBACK_FAILURE_CODES] },
            message: text(1024),
            disksUntouched: { type: 'boolean' },
        },
        ['vmId', 'failbackId', 'phase', 'code', 'message', 'disksUntouched'],
        {
            vmId: VM,
            failbackId: FAILBACK,
            phase: 'Synchronize',
            code: 'GRANT_EXPIRED',
            message: 'GET logUrl answered 403 AuthenticationFailed: the link expired at 2025-01-15T11:00:00Z.',
            disksUntouched: true,
        },
    ),
    ProviderError: message(
        'command',
        'ProviderError',
        'A provider-side failure, classified. With vmId: session is the VM id; without: site:{siteId}.',
        {
            vmId: id,
            code: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' },
            message: text(1024),
            recoverable: { type: 'boolean' },
        },
        ['code', 'message', 'recoverable'],
        { vmId: VM, code: 'VSS_SNAPSHOT_FAILED', message: 'VSS writer SqlServerWriter timed out.', recoverable: true },
    ),
};

/** Schemas of the events the pipeline sends, by `type`. */
export const eventSchemas: Record<ProviderEvent['type'], JsonSchema> = {
    StartReplication: message(
        'event',
        'StartReplication',
        'Start replicating a VM: initial replication of the listed disks, then delta cycles.',
        {
            vmId: id,
            policyName: text(80),
            copyFrequencySeconds: copyFrequency,
            appConsistentSnapshotFrequencyHours: appConsistentHours,
            initialReplicationStart: {
                anyOf: [{ const: 'Immediately' }, instant],
                description: '"Immediately" or an ISO 8601 UTC instant.',
            },
            disks: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: { diskId: id, sizeBytes: { type: 'integer', minimum: 512, maximum: MAX_SAFE } },
                    required: ['diskId', 'sizeBytes'],
                    additionalProperties: false,
                },
            },
        },
        [
            'vmId',
            'policyName',
            'copyFrequencySeconds',
            'appConsistentSnapshotFrequencyHours',
            'initialReplicationStart',
            'disks',
        ],
        {
            vmId: VM,
            policyName: 'default-5min',
            copyFrequencySeconds: 300,
            appConsistentSnapshotFrequencyHours: 4,
            initialReplicationStart: 'Immediately',
            disks: [{ diskId: DISK0, sizeBytes: 136365211648 }],
        },
    ),
    UploadGrant: message(
        'event',
        'UploadGrant',
        'Write-only, short-lived upload URLs answering an UploadGrantRequest, one per requested log.',
        {
            vmId: id,
            requestId: id,
            grants: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: {
                        diskId: id,
                        sequence,
                        logId,
                        blobPath: { type: 'string', minLength: 1, maxLength: 1024 },
                        url: { type: 'string', pattern: '^https?://', maxLength: 4096 },
                        expiresOn: instant,
                    },
                    required: ['diskId', 'sequence', 'logId', 'blobPath', 'url', 'expiresOn'],
                    additionalProperties: false,
                },
            },
        },
        ['vmId', 'requestId', 'grants'],
        {
            vmId: VM,
            requestId: 'req-000124',
            grants: [
                {
                    diskId: DISK0,
                    sequence: 124,
                    logId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
                    blobPath: `replica-logs/site-paris/${VM}/${DISK0}/124-1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f.hrl`,
                    url:
                        `https://account.blob.core.windows.net/replica-logs/site-paris/${VM}/${DISK0}/` +
                        '124-1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f.hrl?sv=2024-08-04&sr=b&sp=cw&se=2025-01-15T11%3A00%3A00Z&sig=…',
                    expiresOn: '2025-01-15T11:00:00Z',
                },
            ],
        },
    ),
    StartResync: message(
        'event',
        'StartResync',
        'Resynchronize the listed disks: compare fixed-block checksums, send only the differing blocks.',
        {
            vmId: id,
            resyncId: id,
            diskIds: { type: 'array', minItems: 1, maxItems: MAX_DISKS, uniqueItems: true, items: id },
            blockSizeBytes: { type: 'integer', minimum: 512, maximum: 67108864 },
            reason: text(256),
            disks: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                description:
                    'Per disk: the digest manifest of this round (docs/resync.md) and the chain position of the resync log.',
                items: {
                    type: 'object',
                    properties: {
                        diskId: id,
                        sizeBytes: bytes,
                        resyncSequence: sequence,
                        round: { type: 'integer', minimum: 1, maximum: 64 },
                        manifestUrl: { type: 'string', minLength: 1, maxLength: 4096 },
                        manifestExpiresOn: instant,
                    },
                    required: ['diskId', 'sizeBytes', 'resyncSequence', 'round', 'manifestUrl', 'manifestExpiresOn'],
                    additionalProperties: false,
                },
            },
        },
        ['vmId', 'resyncId', 'diskIds', 'blockSizeBytes', 'reason'],
        { vmId: VM, resyncId: 'resync-7', diskIds: [DISK0], blockSizeBytes: 2097152, reason: 'ChainGap' },
    ),
    StopReplication: message(
        'event',
        'StopReplication',
        'Stop tracking and uploading for a VM (protection disabled).',
        { vmId: id, reason: text(256) },
        ['vmId', 'reason'],
        { vmId: VM, reason: 'Protection disabled by operator.' },
    ),
    ShutdownForFailover: message(
        'event',
        'ShutdownForFailover',
        'Planned failover: shut the VM down, upload every write up to the shutdown as a final cycle and answer ' +
            'FailoverShutdownCompleted before respondBy; a provider that cannot leaves the VM running.',
        { vmId: id, failoverId: id, respondBy: instant, reason: text(256) },
        ['vmId', 'failoverId', 'respondBy', 'reason'],
        {
            vmId: VM,
            failoverId: 'fo-3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b',
            respondBy: '2025-01-15T10:45:00Z',
            reason: 'Planned failover to Azure (job 3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b).',
        },
    ),
    CancelFailoverShutdown: message(
        'event',
        'CancelFailoverShutdown',
        'The planned failover will not go on: start the VM again if it was shut down for it, and keep replicating.',
        { vmId: id, failoverId: id, reason: text(256) },
        ['vmId', 'failoverId', 'reason'],
        {
            vmId: VM,
            failoverId: 'fo-3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b',
            reason: 'No FailoverShutdownCompleted within 900 s.',
        },
    ),
    StartFailback: message(
        'event',
        'StartFailback',
        'Failback, one round of the comparison: per disk, digest the named nodes of the on-premises disk with seed ' +
            'and the geometry, upload that manifest to manifestUrl, answer FailbackManifestUploaded.',
        {
            vmId: id,
            failbackId: id,
            phase: failbackPhase,
            seed: failbackSeed,
            ...failbackGeometry,
            disks: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: {
                        diskId: id,
                        sizeBytes: bytes,
                        round: failbackRound,
                        level: { type: 'integer', minimum: 0, maximum: 5 },
                        request: {
                            type: 'string',
                            minLength: 4,
                            maxLength: MAX_DIGEST_REQUEST_BASE64,
                            pattern: BASE64_PATTERN,
                            description: 'Rounds after the first: the nodes to describe, a digest request in base64.',
                        },
                        manifestUrl: { type: 'string', minLength: 1, maxLength: 4096 },
                        manifestExpiresOn: instant,
                    },
                    required: ['diskId', 'sizeBytes', 'round', 'level', 'manifestUrl', 'manifestExpiresOn'],
                    additionalProperties: false,
                },
            },
        },
        FAILBACK_DIGEST_REQUIRED,
        {
            ...FAILBACK_DIGEST_EXAMPLE,
            disks: [
                {
                    diskId: DISK0,
                    sizeBytes: 136365211648,
                    round: 1,
                    level: 0,
                    manifestUrl: 'https://st.blob.core.windows.net/failover/vm/fb/Synchronize/disk/1.manifest?sv=…',
                    manifestExpiresOn: '2025-01-15T11:30:00Z',
                },
            ],
        },
    ),
    FailbackLogReady: message(
        'event',
        'FailbackLogReady',
        'Failback: the difference of each disk as one MS-HRL log; download it with its read-only link, apply it, ' +
            'answer FailbackLogApplied.',
        {
            vmId: id,
            failbackId: id,
            phase: failbackPhase,
            seed: failbackSeed,
            ...failbackGeometry,
            disks: {
                type: 'array',
                minItems: 1,
                maxItems: MAX_DISKS,
                items: {
                    type: 'object',
                    properties: {
                        diskId: id,
                        logId,
                        bytes,
                        logUrl: { type: 'string', minLength: 1, maxLength: 4096 },
                        logExpiresOn: instant,
                    },
                    required: ['diskId', 'logId', 'bytes', 'logUrl', 'logExpiresOn'],
                    additionalProperties: false,
                },
            },
        },
        FAILBACK_DIGEST_REQUIRED,
        {
            ...FAILBACK_DIGEST_EXAMPLE,
            disks: [
                {
                    diskId: DISK0,
                    logId: '4e5f6a7b-8c9d-4e0f-8a1b-2c3d4e5f6a7b',
                    bytes: 1052672,
                    logUrl: 'https://st.blob.core.windows.net/failover/vm/fb/Synchronize/disk.hrl?sv=…',
                    logExpiresOn: '2025-01-15T11:40:00Z',
                },
            ],
        },
    ),
    CompleteFailback: message(
        'event',
        'CompleteFailback',
        'Failback: the on-premises disks are level with the VM in Azure, which is shut down: start the VM on ' +
            'premises and answer FailbackCompleted.',
        { vmId: id, failbackId: id },
        ['vmId', 'failbackId'],
        { vmId: VM, failbackId: FAILBACK },
    ),
    CancelFailback: message(
        'event',
        'CancelFailback',
        'Failback: it will not go on. Keep the VM off on premises; the VM in Azure keeps running.',
        { vmId: id, failbackId: id, reason: text(256) },
        ['vmId', 'failbackId', 'reason'],
        { vmId: VM, failbackId: FAILBACK, reason: 'No message from the provider for 60 minutes.' },
    ),
    PolicyChanged: message(
        'event',
        'PolicyChanged',
        'A replication policy changed: cycle settings and the upload bandwidth schedule the provider applies.',
        {
            policyName: text(80),
            vmIds: { type: 'array', maxItems: 5000, uniqueItems: true, items: id },
            copyFrequencySeconds: copyFrequency,
            appConsistentSnapshotFrequencyHours: appConsistentHours,
            bandwidth: {
                type: 'object',
                properties: {
                    timeZone: text(64),
                    workDays: {
                        type: 'array',
                        uniqueItems: true,
                        maxItems: 7,
                        items: { enum: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] },
                    },
                    workHoursStart: { type: 'string', pattern: CLOCK_PATTERN },
                    workHoursEnd: { type: 'string', pattern: CLOCK_PATTERN },
                    workHoursMbps: { type: 'integer', minimum: 1, maximum: 100000 },
                    offHoursMbps: { type: 'integer', minimum: 1, maximum: 100000 },
                },
                required: ['timeZone', 'workDays', 'workHoursStart', 'workHoursEnd'],
                additionalProperties: false,
                description: 'Absent Mbps = unlimited. Work hours = workDays between start and end, local time.',
            },
        },
        ['policyName', 'vmIds', 'copyFrequencySeconds', 'appConsistentSnapshotFrequencyHours', 'bandwidth'],
        {
            policyName: 'default-5min',
            vmIds: [VM],
            copyFrequencySeconds: 300,
            appConsistentSnapshotFrequencyHours: 4,
            bandwidth: {
                timeZone: 'Europe/Paris',
                workDays: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri'],
                workHoursStart: '08:00',
                workHoursEnd: '18:00',
                workHoursMbps: 100,
                offHoursMbps: 1000,
            },
        },
    ),
};

/** The file name a schema is published under in docs/schemas/. */
export function schemaFileName(kind: 'command' | 'event', type: string): string {
    return `${kind}.${type}.v1.schema.json`;
}

/** Every published schema file: name → content (4-space JSON plus newline; prettier may reflow it, the content is what counts). */
export function publishedSchemaFiles(): Map<string, string> {
    const files = new Map<string, string>();
    for (const [type, schema] of Object.entries(commandSchemas)) {
        files.set(schemaFileName('command', type), JSON.stringify(schema, null, 4) + '\n');
    }
    for (const [type, schema] of Object.entries(eventSchemas)) {
        files.set(schemaFileName('event', type), JSON.stringify(schema, null, 4) + '\n');
    }
    return files;
}
