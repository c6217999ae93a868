/**
 * The size rule for an orchestration's custom status, as the Durable extension applies it: the JSON text,
 * counted as UTF-16 (two bytes per code unit), may be at most 16 KB, i.e. 8,192 UTF-16 code units (about 8,000
 * ASCII characters). Over that, `SetCustomStatus` throws and the orchestration fails. The embedded runtime
 * enforces the same rule; orchestrators shape their status with `fitCustomStatus` so it never gets there.
 */
export const CUSTOM_STATUS_MAX_UTF16_BYTES = 16 * 1024;

/** UTF-16 bytes of a JSON text, as .NET's `Encoding.Unicode.GetByteCount` counts them. */
export function utf16Bytes(text: string): number {
    return text.length * 2;
}

/** Why a custom status (its JSON text) would be refused, or undefined when it fits. */
export function customStatusProblem(json: string): string | undefined {
    const bytes = utf16Bytes(json);
    if (bytes <= CUSTOM_STATUS_MAX_UTF16_BYTES) return undefined;
    return (
        `The custom status is ${json.length} characters of JSON (${bytes} bytes as UTF-16); ` +
        `the limit is ${CUSTOM_STATUS_MAX_UTF16_BYTES} bytes (16 KB of UTF-16)`
    );
}

/** Longest string kept whole in a shaped status; longer ones are cut with a marker. */
const SHAPED_STRING_CHARS = 512;
const CUT_MARKER = '…[truncated]';

function cutStrings(value: unknown, maxChars: number): unknown {
    if (typeof value === 'string') {
        return value.length > maxChars ? value.slice(0, maxChars) + CUT_MARKER : value;
    }
    if (Array.isArray(value)) return value.map((v) => cutStrings(v, maxChars));
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cutStrings(v, maxChars)]));
    }
    return value;
}

/**
 * A custom status that fits the extension's limit: first long strings are cut (error messages, details), then
 * shorter and shorter, and as a last resort only the top-level fields that are not objects or arrays are kept
 * with `truncated: true`, so an operator always sees the stage and the job. The status keeps its shape where
 * it can; `truncated: true` says something was left out.
 */
export function fitCustomStatus<T extends object>(status: T): T {
    if (customStatusProblem(JSON.stringify(status)) === undefined) return status;
    for (let maxChars = SHAPED_STRING_CHARS; maxChars >= 16; maxChars = Math.floor(maxChars / 4)) {
        const cut = { ...(cutStrings(status, maxChars) as T), truncated: true };
        if (customStatusProblem(JSON.stringify(cut)) === undefined) return cut;
    }
    const scalars = Object.fromEntries(
        Object.entries(cutStrings(status, 64) as Record<string, unknown>).filter(
            ([, v]) => v === null || typeof v !== 'object',
        ),
    );
    return { ...scalars, truncated: true } as T;
}
