import { RestError } from '@azure/core-rest-pipeline';
import type { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { LocalPlatformError } from '../errors';
import { deadline } from '../storage';
import { TaskHubLease, type TaskHubLeaseOptions } from './hubLease';
import type { InstanceState, InstanceStore } from './store';

/** Where the embedded runtime keeps one instance: one JSON blob per instance under this prefix. */
export const INSTANCE_BLOB_PREFIX = 'instances/';

/**
 * The blob container of a task hub's embedded state: `<hub in lower case>-embedded`. Its own container, so the
 * real engine's containers for the same hub (`<hub>-leases`, `<hub>-largemessages`) are never touched.
 */
export function stateContainerName(taskHub: string): string {
    const name = `${taskHub.toLowerCase()}-embedded`;
    if (!/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(name)) {
        throw new LocalPlatformError(
            'VALIDATION_FAILED',
            `Task hub "${taskHub}" cannot name a blob container ("${name}"): use 3 to 54 letters and digits`,
        );
    }
    return name;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return Buffer.concat(chunks);
}

function statusOf(err: unknown): number | undefined {
    return err instanceof RestError ? err.statusCode : undefined;
}

/**
 * Instance state in blobs of the app's storage, one per instance, each write conditional on the ETag this store
 * read or wrote last (a new instance only if none exists). Reads come from memory: the host holding the task
 * hub's lease is the only writer, so after `load()` memory and storage agree, and a write that finds another
 * writer's ETag fails with CONFLICT instead of overwriting it.
 */
export class BlobInstanceStore implements InstanceStore {
    private readonly instances = new Map<string, { state: InstanceState; etag: string }>();
    private loaded = false;

    constructor(private readonly container: ContainerClient) {}

    /** Creates the container if needed and reads every instance into memory. Call once before anything else. */
    async load(): Promise<number> {
        await this.container.createIfNotExists({ abortSignal: deadline() });
        this.instances.clear();
        for await (const item of this.container.listBlobsFlat({ prefix: INSTANCE_BLOB_PREFIX })) {
            const blob = this.container.getBlockBlobClient(item.name);
            let body: Buffer;
            let etag: string;
            try {
                const download = await blob.download(0, undefined, { abortSignal: deadline() });
                etag = download.etag!;
                body = await readAll(download.readableStreamBody!);
            } catch (err) {
                if (statusOf(err) === 404) continue;
                throw err;
            }
            let state: InstanceState;
            try {
                state = JSON.parse(body.toString('utf8')) as InstanceState;
            } catch (err) {
                throw new LocalPlatformError(
                    'INTERNAL',
                    `Instance blob ${this.container.containerName}/${item.name} is not JSON (${(err as Error).message}); move it away to start`,
                );
            }
            this.instances.set(state.instanceId, { state, etag });
        }
        this.loaded = true;
        return this.instances.size;
    }

    private assertLoaded(): void {
        if (!this.loaded) throw new LocalPlatformError('INTERNAL', 'BlobInstanceStore.load() was not called');
    }

    private blobOf(instanceId: string) {
        return this.container.getBlockBlobClient(`${INSTANCE_BLOB_PREFIX}${encodeURIComponent(instanceId)}.json`);
    }

    private conflict(instanceId: string, err: unknown): never {
        throw new LocalPlatformError(
            'CONFLICT',
            `Instance ${instanceId} was changed in ${this.container.containerName} by another writer ` +
                `(${(err as Error).message.split('\n')[0]}); is a second host running on this task hub?`,
            { instanceId },
        );
    }

    async get(instanceId: string): Promise<InstanceState | undefined> {
        this.assertLoaded();
        const entry = this.instances.get(instanceId);
        return entry ? structuredClone(entry.state) : undefined;
    }

    async put(state: InstanceState): Promise<void> {
        this.assertLoaded();
        const current = this.instances.get(state.instanceId);
        const body = JSON.stringify(state);
        let etag: string;
        try {
            const response = await this.blobOf(state.instanceId).upload(body, Buffer.byteLength(body), {
                conditions: current ? { ifMatch: current.etag } : { ifNoneMatch: '*' },
                blobHTTPHeaders: { blobContentType: 'application/json' },
                abortSignal: deadline(),
            });
            etag = response.etag!;
        } catch (err) {
            const status = statusOf(err);
            if (status === 412 || status === 409) this.conflict(state.instanceId, err);
            throw err;
        }
        this.instances.set(state.instanceId, { state: structuredClone(state), etag });
    }

    async delete(instanceId: string): Promise<boolean> {
        this.assertLoaded();
        const current = this.instances.get(instanceId);
        if (!current) return false;
        try {
            await this.blobOf(instanceId).delete({ conditions: { ifMatch: current.etag }, abortSignal: deadline() });
        } catch (err) {
            const status = statusOf(err);
            if (status === 412) this.conflict(instanceId, err);
            if (status !== 404) throw err;
        }
        this.instances.delete(instanceId);
        return true;
    }

    async list(): Promise<InstanceState[]> {
        this.assertLoaded();
        return [...this.instances.values()].map((e) => structuredClone(e.state));
    }
}

/** A task hub's embedded state opened by the host that now owns it. */
export interface PersistentDurableState {
    store: BlobInstanceStore;
    lease: TaskHubLease;
    /** The blob container holding it. */
    container: string;
    /** Instances found there. */
    instances: number;
}

/**
 * Takes the task hub's lease (waiting or failing as `options.ifOwned` says), then reads its saved instances.
 * Give the store to a DurableRuntime, call its `resume()`, and release the lease after closing the runtime.
 */
export async function openPersistentState(
    blob: BlobServiceClient,
    taskHub: string,
    options: TaskHubLeaseOptions = {},
): Promise<PersistentDurableState> {
    const container = blob.getContainerClient(stateContainerName(taskHub));
    const lease = await TaskHubLease.acquire(container, options);
    const store = new BlobInstanceStore(container);
    try {
        const instances = await store.load();
        return { store, lease, container: container.containerName, instances };
    } catch (err) {
        await lease.release();
        throw err;
    }
}
