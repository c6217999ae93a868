/**
 * Where the operator console is served (functions/console.ts) and the URL that opens it signed in locally: the
 * function key rides in the fragment, which the browser never sends to a server, and the console moves it into
 * the tab's session storage at once (console/src/api.ts).
 */
export const CONSOLE_ROUTE = 'console';

/** The console's URL under an API base URL (`http://127.0.0.1:7071/api`), signed in with `functionKey` if given. */
export function consoleUrl(apiUrl: string, functionKey?: string): string {
    const base = `${apiUrl.replace(/\/+$/, '')}/${CONSOLE_ROUTE}/`;
    return functionKey === undefined ? base : `${base}#key=${encodeURIComponent(functionKey)}`;
}

/** The line `hvr start` and `hvr simulate --serve` print (the label is part of the interface: tests read it). */
export function consoleLine(apiUrl: string, functionKey: string): string {
    return `  Console         ${consoleUrl(apiUrl, functionKey)}`;
}
