import { ISO_INSTANT } from './instants';

/**
 * A blob snapshot's id is its creation time with exactly seven fractional digits (`2025-03-03T09:43:00.1230000Z`),
 * and the service matches it as text. The real Durable engine parses any ISO 8601 string in an activity's input or
 * output as a date and writes it back in its shortest form (`…09:43:00.123Z`), so an id that crossed an
 * orchestration no longer names its snapshot. Every use of an id that came through an orchestration goes through
 * this first: it restores the service's form and leaves anything else as it is.
 */
export function blobSnapshotId(id: string): string {
    const m = ISO_INSTANT.exec(id);
    if (!m) return id;
    return `${m[1]}.${(m[2] ?? '').padEnd(7, '0')}Z`;
}
