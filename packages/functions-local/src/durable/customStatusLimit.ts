/**
 * The Durable extension's limit on an orchestration's custom status: its JSON text, counted as UTF-16 (two
 * bytes per code unit, as .NET's `Encoding.Unicode` counts), may be at most 16 KB. Over that `SetCustomStatus`
 * throws and the orchestration fails; the embedded runtime does the same.
 */
export const CUSTOM_STATUS_LIMIT_UTF16_BYTES = 16 * 1024;

/** Why a custom status (its JSON text) would be refused, or undefined when it fits. */
export function customStatusProblem(json: string): string | undefined {
    const bytes = json.length * 2;
    if (bytes <= CUSTOM_STATUS_LIMIT_UTF16_BYTES) return undefined;
    return (
        `The custom status is ${json.length} characters of JSON (${bytes} bytes as UTF-16); ` +
        `the limit is ${CUSTOM_STATUS_LIMIT_UTF16_BYTES} bytes (16 KB of UTF-16)`
    );
}
