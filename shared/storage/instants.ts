/**
 * The real Durable engine reads every ISO 8601 string in an orchestration's events and activity payloads as a
 * date and writes it back in its shortest form: `2026-12-02T03:50:37.690Z` arrives as `…37.69Z`, `…37.000Z` as
 * `…37Z`. The instant is the same, but the text no longer sorts with `toISOString()`'s (`…37.69Z` sorts after
 * `…37.695Z`). Instants that crossed an orchestration are stored in their canonical form: at least three
 * fractional digits, as many as they had beyond that (a snapshot id's seven stay seven).
 */
export const ISO_INSTANT = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?Z$/;

/** `value` with its fraction padded to three digits when it is an ISO 8601 UTC instant; otherwise unchanged. */
export function canonicalInstant(value: string): string {
    const m = ISO_INSTANT.exec(value);
    if (!m) return value;
    const fraction = m[2] ?? '';
    return fraction.length >= 3 ? value : `${m[1]}.${fraction.padEnd(3, '0')}Z`;
}

/** Earlier-or-later by instant, never by text: the engine's shortened forms compare wrongly as strings. */
export function laterInstant(a: string | undefined, b: string): string {
    return a === undefined || Date.parse(b) > Date.parse(a) ? b : a;
}
