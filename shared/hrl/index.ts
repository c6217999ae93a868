/** MS-HRL v2 (Hyper-V Replica Log): reader, writer, byte sources. See docs/hrl.md. */
export * from './source';
export * from './reader';
export * from './writer';
export { guidFromBytes, guidToBytes, newGuid, isGuid, NIL_GUID } from './guid';
export { byteSum } from './checksum';
