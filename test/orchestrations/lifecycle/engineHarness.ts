import { isDeepStrictEqual } from 'node:util';
import { OutgoingProviderEvent } from '../../../shared/contracts/publisher';
import { INITIAL_REPLICATION_CYCLE_ID } from '../../../shared/contracts/ids';
import { HvrError } from '../../../shared/errors';
import { instanceIds, lifecycleEvents } from '../../../shared/lifecycle/instances';
import { setPorts } from '../../../shared/ports';
import { ReplicaPort } from '../../../shared/replica/replicaPort';
import { StateScope } from '../../../shared/state/protectedItems';
import { VmDescription } from '../../../shared/supportMatrix';
import { testStorage, uniqueName } from '../../support/azurite';
import { ApiCall, ApiResponse, callHttp, enableRequest, sampleVm, seedSiteAndPolicy } from './harness';
import type { EngineStatus, EngineUnderTest } from '../../support/durableEngines';

/**
 * The lifecycle fakes on the engine-neutral interface: real tables in Azurite (a prefix of their own), the
 * provider channel and the replica side recorded, every port on the engine's clock, so the same test runs on the
 * embedded runtime (virtual time) and on the real engine (wall time). Assertions read state through `until`,
 * which on the real engine polls and on the embedded one lets the runtime run first.
 */
export class EngineHarness {
    readonly scope: StateScope = { conn: testStorage(), tablePrefix: uniqueName('t') };
    readonly published: { at: Date; input: OutgoingProviderEvent }[] = [];
    readonly replicaCalls: { at: Date; input: { op: string; vmId: string; diskId?: string } }[] = [];
    readonly metrics: { at: Date; name: string; value: number; dimensions: Record<string, string> }[] = [];
    /** Set to make the next publish calls fail: each call takes the first element (undefined = succeed). */
    publishFailures: (HvrError | Error | undefined)[] = [];
    createReplicaFailures: (HvrError | Error | undefined)[] = [];
    private readonly restore: (() => void)[] = [];

    constructor(readonly engine: EngineUnderTest) {
        const clock = engine.clock;
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
        const running = (s: EngineStatus | undefined) =>
            s !== undefined && ['Pending', 'Running', 'ContinuedAsNew'].includes(s.runtimeStatus);
        this.restore.push(
            setPorts({
                clock,
                storage: () => this.scope.conn,
                state: () => this.scope,
                providerEvents: () => ({
                    publish: async (event) => {
                        this.published.push({ at: clock.now(), input: event });
                        const failure = this.publishFailures.shift();
                        if (failure) throw failure;
                    },
                }),
                replicas: () => replicas,
                orchestrations: {
                    startIfNotRunning: async (_context, name, instanceId, input) => {
                        if (running(await engine.status(instanceId))) return 'alreadyRunning';
                        await engine.startNew(name, { instanceId, input });
                        return 'started';
                    },
                    terminateIfRunning: async (_context, instanceId, reason) => {
                        if (!running(await engine.status(instanceId))) return false;
                        // Called from inside an activity: the embedded engine's own terminate, which does not
                        // run the runtime until idle (that would wait for this very activity).
                        await (engine.embedded ?? engine).terminate(instanceId, reason);
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
    }

    now(): Date {
        return this.engine.clock.now();
    }

    seedSiteAndPolicy(policy: Record<string, unknown> = {}): Promise<void> {
        return seedSiteAndPolicy(this.scope, this.now().toISOString(), policy);
    }

    /** Calls a registered HTTP function as the worker would, with the engine as its durable client. */
    http(functionName: string, init: ApiCall): Promise<ApiResponse> {
        return callHttp(this.engine, functionName, init);
    }

    /** PUT replicationProtectedItems/{vmId}: enable protection through the API (site1, policy gold). */
    enable(vmId: string, vm: VmDescription = sampleVm(vmId)): Promise<ApiResponse> {
        return this.http('apiReplicationProtectedItem', enableRequest(vmId, vm));
    }

    /**
     * What the pipeline does once a provider shipped every disk's initial logs: the provider reports 100 %, and
     * the merge, having applied each disk's last initial log, records the `initial` recovery point and raises
     * CycleComplete to `protect:{vmId}` (only that completes initial replication).
     */
    async completeInitialReplication(vmId: string, capturedAt: Date = this.now()): Promise<void> {
        const instanceId = instanceIds.enableProtection(vmId);
        await this.engine.raiseEvent(instanceId, lifecycleEvents.initialReplicationProgress, {
            vmId,
            disks: { os: 100, data: 100 },
            at: this.now().toISOString(),
        });
        await this.engine.progress();
        await this.engine.raiseEvent(instanceId, lifecycleEvents.cycleComplete, {
            vmId,
            cycleId: INITIAL_REPLICATION_CYCLE_ID,
            recoveryPointId: `${vmId}:${INITIAL_REPLICATION_CYCLE_ID}`,
            consistency: 'CrashConsistent',
            capturedAt: capturedAt.toISOString(),
        });
        await this.engine.progress();
    }

    /**
     * Reads `read()` until it equals `expected` (deep equality): on the real engine polling in wall time up to
     * `timeoutMs`, on the embedded runtime once it has run until idle. Fails with the last value read.
     */
    async until<T>(read: () => Promise<T>, expected: T, timeoutMs = 120_000): Promise<T> {
        const deadline = Date.now() + timeoutMs;
        let last: T;
        for (;;) {
            await this.engine.progress();
            last = await read();
            if (isDeepStrictEqual(last, expected)) return last;
            if (this.engine.name === 'embedded' || Date.now() > deadline) break;
            await new Promise((r) => setTimeout(r, 200));
        }
        expect(last).toEqual(expected);
        return last;
    }

    /**
     * As `until`, for what needs time to pass first (a retry delay, a timeout): on the embedded runtime it
     * advances virtual time up to `virtualMs` until `read()` equals `expected`; on the real engine it polls.
     */
    async eventually<T>(
        read: () => Promise<T>,
        expected: T,
        virtualMs = 7 * 24 * 3600_000,
        timeoutMs = 120_000,
    ): Promise<T> {
        const runtime = this.engine.embedded;
        if (!runtime) return this.until(read, expected, timeoutMs);
        const matches = async () => isDeepStrictEqual(await read(), expected);
        await runtime.runUntilIdle();
        if (!(await matches())) await runtime.advanceUntil(matches, { maxMs: virtualMs });
        return this.until(read, expected);
    }

    close(): void {
        for (const r of this.restore.reverse()) r();
    }
}
