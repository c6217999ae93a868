/**
 * The Durable extension's limit on an orchestration's custom status. It serializes the status to JSON, counts
 * the text as UTF-16 (two bytes per code unit, as .NET's `Encoding.Unicode` counts), truncates that to whole
 * kilobytes and refuses more than 16: so 17,407 bytes (8,703 code units) still pass and 17,408 fail. Over the
 * limit `SetCustomStatus` throws and the orchestration fails; the embedded runtime does the same.
 */
export const CUSTOM_STATUS_LIMIT_KB = 16;

/** The largest UTF-16 size in bytes that the extension accepts (whole kilobytes truncated, then compared). */
export const CUSTOM_STATUS_LIMIT_UTF16_BYTES = (CUSTOM_STATUS_LIMIT_KB + 1) * 1024 - 1;

/** Why a custom status (its JSON text) would be refused, in the extension's words, or undefined when it fits. */
export function customStatusProblem(json: string): string | undefined {
    // A JavaScript string's length counts UTF-16 code units, which is what Encoding.Unicode encodes.
    const kb = Math.floor((json.length * 2) / 1024);
    if (kb <= CUSTOM_STATUS_LIMIT_KB) return undefined;
    return (
        `The UTF-16 size of the JSON-serialized payload must not exceed ${CUSTOM_STATUS_LIMIT_KB} KB. ` +
        `The current payload size is ${kb} KB.`
    );
}
