/**
 * @hvr/provider-kit: what a provider written for Node needs to speak the provider contract
 * (docs/provider-contract.md): the channel (Service Bus sessions, signing, schema checks), upload metadata and
 * uploads through grants, the log chain, and the initial replication and delta cycle flows.
 */
export { ProviderChannel, sameLog, StepIncomplete } from './channel';
export type { ProviderChannelOptions, SiteCredentials } from './channel';
export { DiskChain } from './chain';
export type { BuiltLog, DiskChainState } from './chain';
export { GrantRefused, logMetadata, uploadLog, UPLOAD_TIMEOUT_MS } from './uploads';
export type { LogMetadataInput } from './uploads';
export {
    DEFAULT_MAX_LOG_DATA_BYTES,
    MAX_ENTRY_BYTES,
    planLogs,
    shipCycle,
    shipInitialReplication,
    shipLogs,
} from './shipping';
export type { ByteSource, DiskShipment, ShipChannel, ShipContext } from './shipping';
export { CHANGE_BLOCK_BYTES, ImageBarrier, imageSize } from './barrier';
export * from './core';
