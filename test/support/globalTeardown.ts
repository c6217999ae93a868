export default async function globalTeardown(): Promise<void> {
    const azurite = (globalThis as { __azurite?: { stop(): Promise<void> } }).__azurite;
    await azurite?.stop();
}
