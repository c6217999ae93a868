/**
 * The kit's one door into the core: every module of the repository the kit uses is re-exported here and
 * nowhere else in the kit reaches outside packages/provider-kit. The MS-HRL codec, the digest tree and the
 * contract's owners (ids, blob names, upload metadata, schemas, the signature) stay in the core because the
 * cloud side runs the same code; the kit uses them, it never restates them.
 */
export {
    CONTRACT_VERSION,
    MAX_COMMAND_BYTES,
    PROVIDER_COMMANDS_QUEUE,
    PROVIDER_EVENTS_TOPIC,
    expectedSessionId,
    siteSessionId,
} from '../../../shared/contracts/messages';
export type {
    CycleCompletedCommand,
    CycleLog,
    DiskToReplicate,
    ProviderCommand,
    ProviderCommandType,
    ProviderEvent,
    StartReplicationEvent,
    StartResyncDisk,
    StartResyncEvent,
    StopReplicationEvent,
    UploadGrantEvent,
    UploadGrantItem,
    UploadRequest,
} from '../../../shared/contracts/messages';
export { validateCommand, validateEvent } from '../../../shared/contracts/validate';
export { commandSchemas, eventSchemas } from '../../../shared/contracts/schemas';
export { signCommand, canonicalJson } from '../../../shared/contracts/signature';
export type { SignedCommand } from '../../../shared/contracts/signature';
export {
    ID_PATTERN,
    ID_RULE,
    INITIAL_REPLICATION_CYCLE_ID,
    INSTANT_PATTERN,
    isContractId,
    requireContractId,
} from '../../../shared/contracts/ids';
export { logUploadPath, REPLICA_LOGS_CONTAINER } from '../../../shared/contracts/blobNames';
export { CONSISTENCIES, LOG_METADATA_KEYS } from '../../../shared/contracts/uploadMetadata';
export type { Consistency } from '../../../shared/contracts/uploadMetadata';
export { siteSubscriptionName } from '../../../shared/bus/entities';
export { busClientOptions, DEFAULT_BUS_TIMEOUT_MS } from '../../../shared/bus/busClient';
export { boundedBusCall } from '../../../shared/bus/boundedCall';
export { writeHrl, NIL_GUID, newGuid } from '../../../shared/hrl';
export type { HrlWriteEntry } from '../../../shared/hrl';
export { HRL_MAX_ENTRY_LENGTH } from '../../../shared/hrl/format';
export { ProviderComparison } from '../../../shared/resync/provider';
export { encodeDigestRequest } from '../../../shared/resync/manifest';
export type { ByteRange } from '../../../shared/resync/digest';
export { deadline } from '../../../shared/storage/deadline';
export { HvrError, ensureErrorType } from '../../../shared/errors';

import { INSTANT_PATTERN as INSTANT_RULE } from '../../../shared/contracts/ids';
/** The contract's instant rule as a RegExp. */
export const INSTANT = new RegExp(INSTANT_RULE);
