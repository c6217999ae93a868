import { startAzurite } from '../../packages/functions-local/src';

/**
 * Starts one in-memory Azurite for the whole run. Workers inherit the environment set here,
 * so every integration test finds it through AZURITE_CONNECTION_STRING.
 */
export default async function globalSetup(): Promise<void> {
    if (process.env.AZURITE_CONNECTION_STRING) return;
    const azurite = await startAzurite();
    process.env.AZURITE_CONNECTION_STRING = azurite.connectionString;
    process.env.AZURITE_BLOB_URL = azurite.blobUrl;
    process.env.AZURITE_QUEUE_URL = azurite.queueUrl;
    process.env.AZURITE_TABLE_URL = azurite.tableUrl;
    (globalThis as { __azurite?: { stop(): Promise<void> } }).__azurite = azurite;
}
