import { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { startOnce } from '../../shared/lifecycle/durableClientErrors';
import { OutgoingProviderEvent } from '../../shared/contracts/publisher';
import { Clock, ports } from '../../shared/ports';
import { StateScope, stateScope } from '../../shared/state/protectedItems';
import { VmDiskDescription } from '../../shared/supportMatrix';
import { storageReplicaPort } from './replicaPort';

/** The replica side of a replication relationship, provided by the merge (shared/replica). */
export interface ReplicaPort {
    /** Checks that the replica storage can take this VM's disks (ASR's "Identifying the replication target"). */
    identifyTarget(input: { vmId: string; siteId: string }): Promise<{ target: string }>;
    /**
     * Creates one disk's replica (page blob + disk row). Idempotent: an existing identical replica is kept.
     * `createdAt` is the orchestration's time, so a retry writes the same bytes.
     */
    createReplicaDisk(input: {
        vmId: string;
        siteId: string;
        disk: VmDiskDescription;
        createdAt: string;
    }): Promise<void>;
    /** Deletes a VM's replica disks, their snapshots (recovery points) and their rows. Idempotent. */
    removeReplica(input: { vmId: string; diskIds: string[] }): Promise<void>;
}

/** Starting and stopping other orchestrations from an activity (orchestrators cannot start independent ones). */
export interface OrchestrationControl {
    /** Starts `name` with `instanceId` unless an instance with that id is pending or running. */
    startIfNotRunning(
        context: InvocationContext,
        name: string,
        instanceId: string,
        input: unknown,
    ): Promise<'started' | 'alreadyRunning'>;
    /** Terminates the instance if it is pending or running. */
    terminateIfRunning(context: InvocationContext, instanceId: string, reason: string): Promise<boolean>;
}

/** Where replication metrics go (the alert rules read them). */
export interface MetricSink {
    emit(context: InvocationContext, name: string, value: number, dimensions: Record<string, string>): void;
}

/** What the lifecycle activities reach the world through. Tests replace any part with `setLifecycleDependencies`. */
export interface LifecycleDependencies {
    clock(): Clock;
    state(): StateScope;
    publish(event: OutgoingProviderEvent): Promise<void>;
    replicas(): ReplicaPort;
    orchestrations: OrchestrationControl;
    metrics: MetricSink;
}

const ACTIVE = new Set<string>([
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.ContinuedAsNew,
]);

/** The durable client of an activity that declared `extraInputs: [df.input.durableClient()]`. */
export const durableClientControl: OrchestrationControl = {
    async startIfNotRunning(context, name, instanceId, input) {
        const client = df.getClient(context);
        const status = await client.getStatus(instanceId).catch(() => undefined);
        if (status?.runtimeStatus !== undefined && ACTIVE.has(status.runtimeStatus)) return 'alreadyRunning';
        // Another starter can win between the status read and the start: that is 'alreadyRunning' too.
        return startOnce(client, name, instanceId, input);
    },
    async terminateIfRunning(context, instanceId, reason) {
        const client = df.getClient(context);
        const status = await client.getStatus(instanceId).catch(() => undefined);
        if (status?.runtimeStatus === undefined || !ACTIVE.has(status.runtimeStatus)) return false;
        await client.terminate(instanceId, reason);
        return true;
    },
};

/** Metrics as structured log lines: a log-based alert (or a log-to-metric rule) reads `name` and `value`. */
export const logMetricSink: MetricSink = {
    emit(context, name, value, dimensions) {
        context.log(JSON.stringify({ metric: name, value, ...dimensions }));
    },
};

const defaults: LifecycleDependencies = {
    clock: () => ports().clock,
    state: () => stateScope(),
    publish: (event) => ports().providerEvents().publish(event),
    replicas: () => storageReplicaPort(() => current.state()),
    orchestrations: durableClientControl,
    metrics: logMetricSink,
};

let current: LifecycleDependencies = { ...defaults };

export function lifecycleDependencies(): LifecycleDependencies {
    return current;
}

/** Replaces some dependencies; returns a function that restores the previous ones. */
export function setLifecycleDependencies(overrides: Partial<LifecycleDependencies>): () => void {
    const previous = current;
    current = { ...current, ...overrides };
    return () => {
        current = previous;
    };
}
