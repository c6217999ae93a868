/**
 * Where the soak benchmark counts the pipeline's storage calls by kind. The host's storage connection string
 * goes through `connectionString`; `counts()` reads the totals so far by kind (Put Page, Clear Pages, …), or
 * undefined when nothing counts them.
 */
export interface StorageCounting {
    connectionString: string;
    counts(): Record<string, number> | undefined;
    /** Why the counts are missing or what they include. */
    note: string;
    stop(): Promise<void>;
}

/** No counter yet: the host talks to Azurite directly and the counts are undefined. */
export async function startStorageCounting(azuriteConnectionString: string): Promise<StorageCounting> {
    return {
        connectionString: azuriteConnectionString,
        counts: () => undefined,
        note: 'not counted: no storage counter in this tree (bench/support/storageCounter.ts)',
        stop: async () => undefined,
    };
}
