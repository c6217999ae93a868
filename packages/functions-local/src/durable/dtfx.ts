import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { LocalPlatformError } from '../errors';
import type { FunctionRegistry } from '../host/registry';
import { DtfxBridge } from './dtfxBridge';
import {
    requireDtfxPrerequisites,
    startDtfxProcess,
    type DtfxPrerequisites,
    type RunningDtfxProcess,
} from './dtfxHost';

export interface DtfxEngineOptions {
    /** The app's registrations: the host declares one function per orchestrator and activity found here. */
    registry: FunctionRegistry;
    /** The storage account of the task hub (Azurite's connection string locally). */
    storageConnectionString: string;
    taskHub: string;
    /** Upper bound of the backend's queue polling back-off; default 1 s (the extension's default is 30 s). */
    maxQueuePollingIntervalMs?: number;
    /** An activity running longer than this fails (host.json functionTimeout); default 30 min. */
    activityTimeoutMs?: number;
    log?: (line: string) => void;
    /** The public base of the durable webhooks the status links name; default the local host's default. */
    webhookBase?: string;
    /** Found by requireDtfxPrerequisites() when not given. */
    prerequisites?: DtfxPrerequisites;
}

/** An instance's status as the extension's HTTP API reports it. */
export type DtfxStatus = df.DurableOrchestrationStatus;

/**
 * The real Durable Task engine: the Durable Functions extension (Azure Storage backend) in a .NET host, running
 * the app's registered orchestrators and activities through the loopback bridge. Client operations go through
 * durable-functions' own DurableClient against the extension's HTTP API, as the app's do.
 */
export class DtfxEngine {
    readonly taskHub: string;
    private readonly bridge: DtfxBridge;
    private process: RunningDtfxProcess | undefined;
    private durableClient: df.DurableClient | undefined;
    private bridgeOrigin: string | undefined;

    private constructor(options: DtfxEngineOptions) {
        this.taskHub = options.taskHub;
        this.bridge = new DtfxBridge(options.registry, this, options.log ?? (() => undefined));
    }

    /** Starts the bridge and the host; throws CONFIG_MISSING naming dotnet or the host when either is missing. */
    static async start(options: DtfxEngineOptions): Promise<DtfxEngine> {
        const prerequisites = options.prerequisites ?? requireDtfxPrerequisites();
        if (!/^[A-Za-z][A-Za-z0-9]{2,44}$/.test(options.taskHub)) {
            throw new LocalPlatformError(
                'VALIDATION_FAILED',
                `Task hub name "${options.taskHub}" is not valid for Azure Storage: 3-45 letters and digits, starting with a letter`,
            );
        }
        const engine = new DtfxEngine(options);
        const bridgeUrl = await engine.bridge.listen();
        try {
            engine.process = await startDtfxProcess({
                prerequisites,
                bridgeUrl,
                bridgeToken: engine.bridge.token,
                storageConnectionString: options.storageConnectionString,
                taskHub: options.taskHub,
                webhookBase: options.webhookBase ?? 'http://127.0.0.1:7071/runtime/webhooks/durabletask',
                maxQueuePollingIntervalMs: options.maxQueuePollingIntervalMs ?? 1000,
                activityTimeoutMs: options.activityTimeoutMs ?? 30 * 60_000,
                log: options.log && ((line) => options.log?.(`[dtfx] ${line}`)),
            });
        } catch (err) {
            await engine.bridge.close();
            throw err;
        }
        const rpc = engine.process.clientJson.rpcBaseUrl;
        engine.bridge.rpcOrigin = typeof rpc === 'string' ? new URL(rpc).origin : undefined;
        engine.bridgeOrigin = new URL(bridgeUrl).origin;
        return engine;
    }

    /** The value of a `durableClient` input binding: the payload the extension handed out. */
    async clientBinding(): Promise<unknown> {
        return Promise.resolve(this.running().clientJson);
    }

    /** Where `/runtime/webhooks/durabletask/...` is answered (the bridge forwards it to the extension). */
    get httpOrigin(): string | undefined {
        return this.bridgeOrigin;
    }

    /** How many orchestrator episodes of this instance the bridge has served. */
    episodesOf(instanceId: string): number {
        return this.bridge.episodes.get(instanceId) ?? 0;
    }

    /** The extension's local RPC endpoint that the client payload points at. */
    get rpcOrigin(): string | undefined {
        return this.bridge.rpcOrigin;
    }

    /** durable-functions' DurableClient over the extension's HTTP API, built as `df.getClient(context)` builds it. */
    client(): df.DurableClient {
        if (!this.durableClient) {
            const input = df.input.durableClient();
            const context = new InvocationContext({ options: { extraInputs: [input] } });
            context.extraInputs.set(input, this.running().clientJson);
            this.durableClient = df.getClient(context);
        }
        return this.durableClient;
    }

    async startNew(orchestrationName: string, options: { instanceId?: string; input?: unknown } = {}): Promise<string> {
        return this.client().startNew(orchestrationName, options);
    }

    async raiseEvent(instanceId: string, eventName: string, data?: unknown): Promise<void> {
        await this.client().raiseEvent(instanceId, eventName, data);
    }

    async getStatus(instanceId: string): Promise<DtfxStatus | undefined> {
        try {
            return await this.client().getStatus(instanceId, { showInput: true });
        } catch (err) {
            if (/404|not found/i.test((err as Error).message)) return undefined;
            throw err;
        }
    }

    async terminate(instanceId: string, reason: string): Promise<void> {
        await this.client().terminate(instanceId, reason);
    }

    async purge(instanceId: string): Promise<number> {
        const result = await this.client().purgeInstanceHistory(instanceId);
        return result.instancesDeleted;
    }

    /** Polls until the instance's status satisfies `done` (or `timeoutMs` of wall time passes). */
    async waitForStatus(
        instanceId: string,
        done: (status: DtfxStatus) => boolean,
        options: { timeoutMs?: number; pollMs?: number } = {},
    ): Promise<DtfxStatus> {
        const deadline = Date.now() + (options.timeoutMs ?? 60_000);
        let last: DtfxStatus | undefined;
        for (;;) {
            last = await this.getStatus(instanceId);
            if (last && done(last)) return last;
            if (Date.now() > deadline) {
                throw new LocalPlatformError(
                    'TIMEOUT',
                    `Instance ${instanceId} did not reach the awaited status within ${options.timeoutMs ?? 60_000} ms (last: ${last?.runtimeStatus ?? 'not found'})`,
                );
            }
            await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 100));
        }
    }

    async close(): Promise<void> {
        await this.process?.stop();
        this.process = undefined;
        await this.bridge.close();
    }

    private running(): RunningDtfxProcess {
        if (!this.process) throw new LocalPlatformError('INTERNAL', 'The Durable engine host is not running');
        return this.process;
    }
}
