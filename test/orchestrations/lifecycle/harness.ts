/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are read loosely in tests */
import { HttpRequest, HttpResponseInit } from '@azure/functions';
import { OutgoingProviderEvent } from '../../../shared/contracts/publisher';
import { INITIAL_REPLICATION_CYCLE_ID } from '../../../shared/contracts/ids';
import { instanceIds, lifecycleEvents } from '../../../shared/lifecycle/instances';
import { HvrError } from '../../../shared/errors';
import { setPorts } from '../../../shared/ports';
import { ReplicaPort } from '../../../shared/replica/replicaPort';
import { validateReplicationPolicy } from '../../../shared/policy/replicationPolicy';
import { putPolicy } from '../../../shared/state/policies';
import { PROTECTION_STATES, ProtectedItem, StateScope } from '../../../shared/state/protectedItems';
import { registerSite } from '../../../shared/state/sites';
import { VmDescription } from '../../../shared/supportMatrix';
import {
    durableClientBindings,
    DurableRuntime,
    type DurableClientSource,
    functionRegistry,
    invokeFunction,
    VirtualClock,
} from '../../../packages/functions-local/src';
import { testStorage, uniqueName } from '../../support/azurite';

export const GiB = 1024 ** 3;
export const START = new Date('2025-03-03T08:00:00.000Z');

export function sampleVm(vmId: string, overrides: Partial<VmDescription> = {}): VmDescription {
    return {
        vmId,
        name: `vm-${vmId}`,
        generation: 2,
        disks: [
            { diskId: 'os', sizeBytes: 64 * GiB, logicalSectorBytes: 512, isOsDisk: true },
            { diskId: 'data', sizeBytes: 200 * GiB, logicalSectorBytes: 512, isOsDisk: false },
        ],
        ...overrides,
    };
}

/** An HTTP response as a test reads it. */
/** The row of a VM already Protected since `at` (site1, policy gold, sampleVm's disks), for tests that start mid-life. */
export function protectedVmRow(vmId: string, at: string, overrides: Partial<ProtectedItem> = {}): ProtectedItem {
    const vm = sampleVm(vmId);
    return {
        vmId,
        siteId: 'site1',
        vmName: vm.name,
        generation: 2,
        policyName: 'gold',
        disks: vm.disks,
        protectionState: 'Protected',
        protectionStateDescription: PROTECTION_STATES.Protected,
        resynchronizationState: 'None',
        replicationHealth: 'Normal',
        healthReasons: [],
        createdAt: at,
        updatedAt: at,
        ...overrides,
    };
}

export type ApiResponse = HttpResponseInit & { jsonBody?: Record<string, any> };

/** An HTTP call to a registered function, as the management API tests make it. */
export interface ApiCall {
    method: string;
    path: string;
    params?: Record<string, string>;
    query?: Record<string, string>;
    body?: unknown;
}

/** Calls a registered HTTP function as the worker would, with `durable` as its durable client. */
export async function callHttp(
    durable: DurableClientSource,
    functionName: string,
    init: ApiCall,
): Promise<ApiResponse> {
    const request = new HttpRequest({
        method: init.method,
        url: `http://localhost:7071/api/${init.path}`,
        params: init.params ?? {},
        query: init.query ?? {},
        ...(init.body !== undefined ? { body: { string: JSON.stringify(init.body) } } : {}),
    });
    const { result } = await invokeFunction(functionRegistry().get(functionName), request, {
        bindings: [durableClientBindings(durable)],
    });
    return result as ApiResponse;
}

/** The site `site1` (Paris) and the policy `gold` (300 s, overridable) every lifecycle test protects into. */
export async function seedSiteAndPolicy(
    scope: StateScope,
    at: string,
    policy: Record<string, unknown> = {},
): Promise<void> {
    await registerSite(scope, { siteId: 'site1', name: 'Paris', kind: 'HyperVSite', timeZone: 'Europe/Paris' }, at);
    await putPolicy(scope, validateReplicationPolicy({ name: 'gold', copyFrequencySeconds: 300, ...policy }), at);
}

/** PUT replicationProtectedItems/{vmId}: enable protection through the API (site1, policy gold). */
export function enableRequest(vmId: string, vm: VmDescription): ApiCall {
    return {
        method: 'PUT',
        path: `replicationProtectedItems/${vmId}`,
        params: { vmId },
        body: { siteId: 'site1', policyName: 'gold', vm },
    };
}

/** A call a fake received, with the virtual time at which it happened. */
export interface Attempt<T> {
    at: Date;
    input: T;
}

/** Fakes for the replica side and the provider channel, with failure injection; real tables in Azurite. */
export class LifecycleHarness {
    readonly clock = new VirtualClock(START);
    readonly runtime = new DurableRuntime({ registry: functionRegistry(), clock: this.clock });
    readonly scope: StateScope = { conn: testStorage(), tablePrefix: uniqueName('t') };
    readonly published: Attempt<OutgoingProviderEvent>[] = [];
    readonly replicaCalls: Attempt<{ op: string; vmId: string; diskId?: string }>[] = [];
    readonly metrics: { at: Date; name: string; value: number; dimensions: Record<string, string> }[] = [];
    /** Set to make the next publish calls fail: each call takes the first element (undefined = succeed). */
    publishFailures: (HvrError | Error | undefined)[] = [];
    createReplicaFailures: (HvrError | Error | undefined)[] = [];
    private readonly restore: (() => void)[] = [];

    constructor() {
        const clock = this.clock;
        const runtime = this.runtime;
        const replicas: ReplicaPort = {
            identifyTarget: async ({ vmId }) => {
                this.replicaCalls.push({ at: clock.now(), input: { op: 'identifyTarget', vmId } });
                return { target: 'replicas' };
            },
            createReplicaDisk: async ({ vmId, disk }) => {
                this.replicaCalls.push({
                    at: clock.now(),
                    input: { op: 'createReplicaDisk', vmId, diskId: disk.diskId },
                });
                const failure = this.createReplicaFailures.shift();
                if (failure) throw failure;
            },
            removeReplica: async ({ vmId }) => {
                this.replicaCalls.push({ at: clock.now(), input: { op: 'removeReplica', vmId } });
            },
        };
        this.restore.push(
            setPorts({
                clock,
                state: () => this.scope,
                providerEvents: () => ({
                    publish: async (event) => {
                        this.published.push({ at: clock.now(), input: event });
                        const failure = this.publishFailures.shift();
                        if (failure) throw failure;
                    },
                }),
                replicas: () => replicas,
                // Tests observe starts and stops through this port rather than through the durable client.
                orchestrations: {
                    startIfNotRunning: async (_context, name, instanceId, input) => {
                        const status = await runtime.getStatus(instanceId);
                        if (status && ['Pending', 'Running'].includes(status.runtimeStatus)) return 'alreadyRunning';
                        await runtime.startNew(name, { instanceId, input });
                        return 'started';
                    },
                    terminateIfRunning: async (_context, instanceId, reason) => {
                        const status = await runtime.getStatus(instanceId);
                        if (!status || !['Pending', 'Running'].includes(status.runtimeStatus)) return false;
                        await runtime.terminate(instanceId, reason);
                        return true;
                    },
                },
                metrics: {
                    emit: (_context, name, value, dimensions) => {
                        this.metrics.push({ at: clock.now(), name, value, dimensions });
                    },
                },
            }),
        );
        process.env.STATE_TABLE_PREFIX = this.scope.tablePrefix;
        this.restore.push(() => {
            delete process.env.STATE_TABLE_PREFIX;
        });
        // API handlers resolve storage through the ports.
        this.restore.push(setPorts({ storage: () => this.scope.conn }));
    }

    now(): Date {
        return this.clock.now();
    }

    seedSiteAndPolicy(policy: Record<string, unknown> = {}): Promise<void> {
        return seedSiteAndPolicy(this.scope, this.clock.now().toISOString(), policy);
    }

    /** Calls a registered HTTP function as the worker would, with this runtime as its durable client. */
    http(functionName: string, init: ApiCall): Promise<ApiResponse> {
        return callHttp(this.runtime, functionName, init);
    }

    enable(vmId: string, vm: VmDescription = sampleVm(vmId)): Promise<ApiResponse> {
        return this.http('apiReplicationProtectedItem', enableRequest(vmId, vm));
    }

    /**
     * What the pipeline does once a provider shipped every disk's initial logs: the provider reports 100 %, and
     * the merge, having applied each disk's last initial log, records the `initial` recovery point and raises
     * CycleComplete to `protect:{vmId}` (only that completes initial replication).
     */
    async completeInitialReplication(vmId: string, capturedAt: Date = this.clock.now()): Promise<void> {
        const instanceId = instanceIds.enableProtection(vmId);
        await this.runtime.raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId,
            disks: { os: 100, data: 100 },
            at: this.clock.now().toISOString(),
        });
        await this.runtime.runUntilIdle();
        await this.runtime.raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId,
            cycleId: INITIAL_REPLICATION_CYCLE_ID,
            recoveryPointId: `${vmId}:${INITIAL_REPLICATION_CYCLE_ID}`,
            consistency: 'CrashConsistent',
            capturedAt: capturedAt.toISOString(),
        });
        await this.runtime.runUntilIdle();
    }

    async close(): Promise<void> {
        await this.runtime.close();
        for (const undo of this.restore.reverse()) undo();
    }
}
