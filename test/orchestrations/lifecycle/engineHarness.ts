import { isDeepStrictEqual } from 'node:util';
import { HttpRequest, HttpResponseInit } from '@azure/functions';
import { OutgoingProviderEvent } from '../../../shared/contracts/publisher';
import { setPorts } from '../../../shared/ports';
import { validateReplicationPolicy } from '../../../shared/policy/replicationPolicy';
import { putPolicy } from '../../../shared/state/policies';
import { StateScope } from '../../../shared/state/protectedItems';
import { registerSite } from '../../../shared/state/sites';
import { ReplicaPort, setLifecycleDependencies } from '../../../orchestrations/lifecycle/dependencies';
import { durableClientBindings, functionRegistry, invokeFunction } from '../../../packages/functions-local/src';
import { VmDescription } from '../../../shared/supportMatrix';
import { testStorage, uniqueName } from '../../support/azurite';
import { sampleVm } from './harness';
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
            },
            removeReplica: async ({ vmId }) => {
                this.replicaCalls.push({ at: clock.now(), input: { op: 'removeReplica', vmId } });
            },
        };
        const running = (s: EngineStatus | undefined) =>
            s !== undefined && ['Pending', 'Running', 'ContinuedAsNew'].includes(s.runtimeStatus);
        this.restore.push(
            setPorts({ clock, storage: () => this.scope.conn }),
            setLifecycleDependencies({
                clock: () => clock,
                state: () => this.scope,
                publish: async (event) => {
                    this.published.push({ at: clock.now(), input: event });
                },
                replicas: () => replicas,
                orchestrations: {
                    startIfNotRunning: async (_context, name, instanceId, input) => {
                        if (running(await engine.status(instanceId))) return 'alreadyRunning';
                        await engine.startNew(name, { instanceId, input });
                        return 'started';
                    },
                    terminateIfRunning: async (_context, instanceId, reason) => {
                        if (!running(await engine.status(instanceId))) return false;
                        await engine.terminate(instanceId, reason);
                        return true;
                    },
                },
                metrics: { emit: () => undefined },
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

    async seedSiteAndPolicy(policy: Record<string, unknown> = {}): Promise<void> {
        const at = this.now().toISOString();
        await registerSite(
            this.scope,
            { siteId: 'site1', name: 'Paris', kind: 'HyperVSite', timeZone: 'Europe/Paris' },
            at,
        );
        await putPolicy(
            this.scope,
            validateReplicationPolicy({ name: 'gold', copyFrequencySeconds: 300, ...policy }),
            at,
        );
    }

    /** Calls a registered HTTP function as the worker would, with the engine as its durable client. */
    async http(
        functionName: string,
        init: { method: string; path: string; params?: Record<string, string>; body?: unknown },
    ): Promise<HttpResponseInit & { jsonBody?: Record<string, unknown> }> {
        const request = new HttpRequest({
            method: init.method,
            url: `http://localhost:7071/api/${init.path}`,
            params: init.params ?? {},
            ...(init.body !== undefined ? { body: { string: JSON.stringify(init.body) } } : {}),
        });
        const { result } = await invokeFunction(functionRegistry().get(functionName), request, {
            bindings: [durableClientBindings(this.engine)],
        });
        return result as HttpResponseInit & { jsonBody?: Record<string, unknown> };
    }

    /** PUT replicationProtectedItems/{vmId}: enable protection through the API (site1, policy gold). */
    enable(vmId: string, vm: VmDescription = sampleVm(vmId)) {
        return this.http('apiReplicationProtectedItem', {
            method: 'PUT',
            path: `replicationProtectedItems/${vmId}`,
            params: { vmId },
            body: { siteId: 'site1', policyName: 'gold', vm },
        });
    }

    /**
     * Reads `read()` until it equals `expected` (deep equality): on the real engine polling in wall time up to
     * `timeoutMs`, on the embedded runtime once it has run until idle. Fails with the last value read.
     */
    async until<T>(read: () => Promise<T>, expected: T, timeoutMs = 30_000): Promise<T> {
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

    close(): void {
        for (const r of this.restore.reverse()) r();
    }
}
