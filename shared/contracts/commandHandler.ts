import { healthThresholds } from '../health';
import { ErrorCode, HvrError, ensureErrorType } from '../errors';
import {
    FailoverShutdownEvent,
    instanceIds,
    InitialReplicationProgressEvent,
    lifecycleEvents,
    LifecycleEventName,
    ProviderErrorEvent,
    ProviderHeartbeatEvent,
} from '../lifecycle/instances';
import { Clock } from '../ports';
import { UploadGrantIssuer } from '../grants/uploadGrants';
import {
    Consistency,
    CycleLog,
    expectedSessionId,
    MAX_COMMAND_BYTES,
    PercentByDisk,
    ProviderCommand,
    ResyncDigestRequestPayload,
    UploadGrantEvent,
} from './messages';
import { ProviderPresence, ReplayWindow, SiteKeyStore, VmOwnership } from './providerSites';
import { ProviderEventPublisher } from './publisher';
import { ID_PATTERN } from './ids';
import { SignedEnvelope, signatureMatches } from './signature';
import { validateCommand } from './validate';

/** A command as a transport hands it over (the SDK receiver, the Functions trigger, the local host). */

/**
 * The monitors of a provider's VMs hear of its heartbeats at most this often: a third of the heartbeat Warning
 * threshold (shared/health.ts), so a live provider never reads as silent.
 */
export const HEARTBEAT_MONITOR_INTERVAL_MS = (healthThresholds(0).heartbeatWarningSeconds * 1000) / 3;

export interface ProviderCommandDelivery {
    /** Raw bytes, a string, or JSON the Functions worker already parsed. */
    body: unknown;
    messageId?: string;
    sessionId?: string;
    /** The broker's sequence number: the same on a redelivery, new when a message is sent again. */
    sequenceNumber?: string;
    deliveryCount?: number;
    applicationProperties?: Record<string, unknown>;
}

/** What the transport must do with the message. */
export type CommandOutcome =
    | { action: 'complete'; disposition: 'processed' | 'duplicate'; type: ProviderCommand['type']; notes: string[] }
    | { action: 'deadLetter'; reason: ErrorCode; description: string }
    | { action: 'abandon'; reason: ErrorCode; description: string };

/** Raises an external event on an orchestration; an instance that does not exist is an answer, not a failure. */
export interface LifecycleRaiser {
    raise(instanceId: string, eventName: LifecycleEventName, payload: unknown): Promise<'raised' | 'instanceMissing'>;
}

export interface ChannelLog {
    info(message: string, fields?: Record<string, unknown>): void;
    warn(message: string, fields?: Record<string, unknown>): void;
}

export interface FreshnessWindow {
    /** Oldest accepted signing time, relative to now. */
    maxAgeMs: number;
    /** How far ahead of our clock a provider's clock may be. */
    maxFutureMs: number;
}

/** Providers retry for a while; a message signed 15 minutes ago is no longer news. */
export const DEFAULT_FRESHNESS: FreshnessWindow = { maxAgeMs: 15 * 60_000, maxFutureMs: 5 * 60_000 };

/**
 * Records what a cycle report says was uploaded (the upload ledger the merge's chain-gap rule reads,
 * shared/replica/chainGap.ts).
 */
export interface UploadReports {
    cycleReported(vmId: string, cycleId: string, logs: CycleLog[], at: string): Promise<void>;
}

/** Everything the command handler touches. Each is a port so tests pass fakes and assert nothing changed. */
export interface ProviderCommandPorts {
    clock: Clock;
    keys: SiteKeyStore;
    vms: VmOwnership;
    replay: ReplayWindow;
    presence: ProviderPresence;
    lifecycle: LifecycleRaiser;
    grants: UploadGrantIssuer;
    /** Absent: cycle reports are only raised to the monitor, not recorded. */
    uploads?: UploadReports;
    events: ProviderEventPublisher;
    log: ChannelLog;
    freshness?: FreshnessWindow;
}

/** Payload of `CycleUploaded`: the provider uploaded every log of a cycle. */
export interface CycleUploadedEvent {
    vmId: string;
    siteId: string;
    cycleId: string;
    consistency: Consistency;
    capturedAt: string;
    logs: CycleLog[];
    at: string;
}

/** Payload of `ResyncProgress` and `ResyncCompleted`. */
export interface ProviderResyncEvent {
    vmId: string;
    resyncId: string;
    /** Progress: percent per disk. Completion: 100 for each finished disk. */
    disks: PercentByDisk;
    at: string;
}

/** Payload of `ResyncDigestRequest` on `resync:{vmId}` (RESYNC_REQUEST_INVALID later if it does not fit the disk). */
export type ProviderDigestRequestEvent = ResyncDigestRequestPayload;

/** Which orchestration instance each command's lifecycle event goes to. */
export const commandRoutes = {
    heartbeat: instanceIds.replicationMonitor,
    initialReplicationProgress: instanceIds.enableProtection,
    cycleUploaded: instanceIds.replicationMonitor,
    resync: instanceIds.resync,
    resyncDigestRequest: instanceIds.resync,
    providerError: instanceIds.replicationMonitor,
    failoverShutdownCompleted: instanceIds.failover,
    failback: instanceIds.failback,
} as const;

class Rejection extends Error {
    constructor(
        readonly code: ErrorCode,
        message: string,
    ) {
        super(message);
    }
}

const ID = new RegExp(ID_PATTERN);
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

function oneLine(text: string): string {
    return text.replace(/\s+/g, ' ').trim().slice(0, 512);
}

function bodySize(body: unknown): number {
    if (body instanceof Uint8Array) return body.byteLength;
    if (typeof body === 'string') return Buffer.byteLength(body, 'utf8');
    try {
        return Buffer.byteLength(JSON.stringify(body) ?? '', 'utf8');
    } catch {
        return Number.POSITIVE_INFINITY;
    }
}

function parseBody(body: unknown): unknown {
    if (body instanceof Uint8Array || typeof body === 'string') {
        const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
        try {
            return JSON.parse(text) as unknown;
        } catch (err) {
            throw new Rejection('MESSAGE_NOT_JSON', `Body is not JSON: ${ensureErrorType(err).message}`);
        }
    }
    return body;
}

function stringProperty(props: Record<string, unknown>, name: string): string | undefined {
    const value = props[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
}

function envelopeOf(delivery: ProviderCommandDelivery): { envelope: SignedEnvelope; signature: string } {
    const props = delivery.applicationProperties ?? {};
    const siteId = stringProperty(props, 'siteId');
    const keyId = stringProperty(props, 'keyId');
    const timestamp = stringProperty(props, 'timestamp');
    const signature = stringProperty(props, 'signature');
    if (!delivery.messageId) throw new Rejection('MESSAGE_INVALID', 'The message has no messageId.');
    if (!delivery.sessionId) throw new Rejection('MESSAGE_INVALID', 'The message has no sessionId.');
    if (!siteId || !keyId || !signature || !timestamp) {
        const missing = [
            !siteId && 'siteId',
            !keyId && 'keyId',
            !timestamp && 'timestamp',
            !signature && 'signature',
        ].filter(Boolean);
        throw new Rejection(
            'MESSAGE_UNSIGNED',
            `Unsigned message: application properties ${missing.join(', ')} missing.`,
        );
    }
    if (!ID.test(siteId)) {
        throw new Rejection('MESSAGE_SIGNATURE', `Application property siteId "${siteId.slice(0, 40)}" is malformed.`);
    }
    if (!INSTANT.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
        throw new Rejection('MESSAGE_INVALID', `timestamp "${timestamp.slice(0, 40)}" is not an ISO 8601 UTC instant.`);
    }
    return {
        envelope: { siteId, keyId, timestamp, messageId: delivery.messageId, sessionId: delivery.sessionId },
        signature,
    };
}

function vmsNamedBy(command: ProviderCommand): string[] {
    if (command.type === 'Heartbeat') return command.vms.map((vm) => vm.vmId);
    return 'vmId' in command && command.vmId !== undefined ? [command.vmId] : [];
}

/**
 * Validates a provider command and carries it out. Pure over its ports: every check that can reject runs
 * before anything is written, so a rejected message changes nothing. The order is
 * size → JSON → envelope → signature → schema/type/version → session → freshness → site ownership → replay,
 * then dispatch, then the message id is remembered.
 */
export async function handleProviderCommand(
    delivery: ProviderCommandDelivery,
    ports: ProviderCommandPorts,
): Promise<CommandOutcome> {
    let siteId: string | undefined;
    try {
        const size = bodySize(delivery.body);
        if (size > MAX_COMMAND_BYTES) {
            throw new Rejection('MESSAGE_TOO_LARGE', `Body is ${size} bytes; the limit is ${MAX_COMMAND_BYTES}.`);
        }
        const body = parseBody(delivery.body);
        const { envelope, signature } = envelopeOf(delivery);
        siteId = envelope.siteId;

        const key = await ports.keys.siteKey(envelope.siteId, envelope.keyId);
        if (!key) {
            throw new Rejection(
                'MESSAGE_SITE_UNKNOWN',
                `No key ${envelope.keyId} for site ${envelope.siteId}: the site is not registered, or the key id is not one of its keys.`,
            );
        }
        if (key.revoked) {
            throw new Rejection('MESSAGE_KEY_REVOKED', `Key ${envelope.keyId} of site ${envelope.siteId} is revoked.`);
        }
        if (!signatureMatches(key.key, envelope, body, signature)) {
            throw new Rejection(
                'MESSAGE_SIGNATURE',
                `Signature does not match site ${envelope.siteId} key ${envelope.keyId}.`,
            );
        }

        let command: ProviderCommand;
        try {
            command = validateCommand(body);
        } catch (err) {
            if (err instanceof HvrError) throw new Rejection(err.code, err.message);
            throw err;
        }

        const session = expectedSessionId(command, envelope.siteId);
        if (envelope.sessionId !== session) {
            throw new Rejection(
                'MESSAGE_SESSION',
                `${command.type} must be sent with sessionId "${session}", not "${envelope.sessionId}".`,
            );
        }

        const now = ports.clock.now();
        const freshness = ports.freshness ?? DEFAULT_FRESHNESS;
        const age = now.getTime() - Date.parse(envelope.timestamp);
        if (age > freshness.maxAgeMs) {
            throw new Rejection(
                'MESSAGE_STALE',
                `Signed at ${envelope.timestamp}, ${Math.round(age / 1000)} s ago; the limit is ${freshness.maxAgeMs / 1000} s.`,
            );
        }
        if (-age > freshness.maxFutureMs) {
            throw new Rejection(
                'MESSAGE_STALE',
                `Signed at ${envelope.timestamp}, ${Math.round(-age / 1000)} s in the future; check the provider's clock.`,
            );
        }

        for (const vmId of vmsNamedBy(command)) {
            const owner = await ports.vms.siteOf(vmId);
            if (owner !== envelope.siteId) {
                ports.log.warn('Provider command names a VM of another site', {
                    siteId: envelope.siteId,
                    vmId,
                    owner: owner ?? null,
                    type: command.type,
                    messageId: envelope.messageId,
                });
                throw new Rejection(
                    owner === undefined ? 'MESSAGE_VM_UNKNOWN' : 'MESSAGE_OTHER_SITE',
                    owner === undefined
                        ? `VM ${vmId} is not registered with site ${envelope.siteId}.`
                        : `VM ${vmId} belongs to another site, not ${envelope.siteId}.`,
                );
            }
        }

        const previous = await ports.replay.seen(envelope.siteId, envelope.messageId);
        if (previous) {
            if (delivery.sequenceNumber !== undefined && previous.sequenceNumber === delivery.sequenceNumber) {
                return { action: 'complete', disposition: 'duplicate', type: command.type, notes: [] };
            }
            throw new Rejection(
                'MESSAGE_REPLAYED',
                `Message ${envelope.messageId} of site ${envelope.siteId} was already processed at ${previous.seenAt.toISOString()}.`,
            );
        }

        const notes = await dispatch(command, envelope, now, ports);
        await ports.replay.remember(envelope.siteId, envelope.messageId, {
            seenAt: now,
            sequenceNumber: delivery.sequenceNumber,
        });
        return { action: 'complete', disposition: 'processed', type: command.type, notes };
    } catch (err) {
        if (err instanceof Rejection) {
            const description = oneLine(err.message);
            ports.log.warn('Provider command rejected', {
                reason: err.code,
                description,
                siteId: siteId ?? null,
                messageId: delivery.messageId ?? null,
            });
            return { action: 'deadLetter', reason: err.code, description };
        }
        if (err instanceof HvrError && !err.recoverable) {
            const description = oneLine(err.message);
            ports.log.warn('Provider command refused', {
                reason: err.code,
                description,
                siteId: siteId ?? null,
                messageId: delivery.messageId ?? null,
            });
            return { action: 'deadLetter', reason: err.code, description };
        }
        const error = ensureErrorType(err);
        const reason: ErrorCode = err instanceof HvrError ? err.code : 'TRANSIENT';
        return { action: 'abandon', reason, description: oneLine(error.message) };
    }
}

async function dispatch(
    command: ProviderCommand,
    envelope: SignedEnvelope,
    now: Date,
    ports: ProviderCommandPorts,
): Promise<string[]> {
    const at = now.toISOString();
    const siteId = envelope.siteId;
    const notes: string[] = [];
    const raise = async (instanceId: string, eventName: LifecycleEventName, payload: unknown) => {
        const result = await ports.lifecycle.raise(instanceId, eventName, payload);
        if (result === 'instanceMissing') {
            const note = `${eventName} not delivered: no orchestration ${instanceId}`;
            notes.push(note);
            ports.log.info(note, { siteId, messageId: envelope.messageId });
        }
    };

    switch (command.type) {
        case 'Register':
            await ports.presence.recordRegistration(
                siteId,
                {
                    providerId: command.providerId,
                    kind: command.kind,
                    hostName: command.hostName,
                    providerVersion: command.providerVersion,
                },
                now,
            );
            break;
        case 'Heartbeat': {
            let pending = 0;
            for (const vm of command.vms) {
                for (const bytes of Object.values(vm.pendingLogBytes)) pending += bytes;
            }
            const notifyMonitors = await ports.presence.recordHeartbeat(
                siteId,
                command.providerId,
                now,
                command.vms.length,
                pending,
                HEARTBEAT_MONITOR_INTERVAL_MS,
            );
            // A provider may beat every few seconds; its VMs' monitors need only know it lives well inside the
            // health thresholds. Forwarding every beat would wake every VM's monitor (an orchestration episode
            // and a table-reading activity each) at the heartbeat rate: a timer storm that grows with the fleet.
            if (!notifyMonitors) break;
            for (const vm of command.vms) {
                const event: ProviderHeartbeatEvent = {
                    vmId: vm.vmId,
                    siteId,
                    at,
                    pendingLogBytes: vm.pendingLogBytes,
                };
                await raise(commandRoutes.heartbeat(vm.vmId), lifecycleEvents.heartbeat, event);
            }
            break;
        }
        case 'InitialReplicationProgress': {
            const event: InitialReplicationProgressEvent = { vmId: command.vmId, disks: command.disks, at };
            await raise(
                commandRoutes.initialReplicationProgress(command.vmId),
                lifecycleEvents.initialReplicationProgress,
                event,
            );
            break;
        }
        case 'CycleCompleted': {
            const event: CycleUploadedEvent = {
                vmId: command.vmId,
                siteId,
                cycleId: command.cycleId,
                consistency: command.consistency,
                capturedAt: command.capturedAt,
                logs: command.logs,
                at,
            };
            // Recorded first: a lost log is judged from it even if the monitor is not running.
            await ports.uploads?.cycleReported(command.vmId, command.cycleId, command.logs, at);
            await raise(commandRoutes.cycleUploaded(command.vmId), lifecycleEvents.cycleUploaded, event);
            break;
        }
        case 'UploadGrantRequest': {
            const grants = await ports.grants.issue(
                command.uploads.map((u) => ({ siteId, vmId: command.vmId, ...u })),
                now,
            );
            const payload: Omit<UploadGrantEvent, 'type' | 'version'> = {
                vmId: command.vmId,
                requestId: command.requestId,
                grants,
            };
            await ports.events.publish({
                type: 'UploadGrant',
                siteId,
                vmId: command.vmId,
                payload: { ...payload },
                // A redelivered request produces the same id, so the topic's duplicate detection drops the repeat.
                messageId: `grant:${envelope.messageId}`,
            });
            break;
        }
        case 'ResyncProgress': {
            const event: ProviderResyncEvent = {
                vmId: command.vmId,
                resyncId: command.resyncId,
                disks: command.disks,
                at,
            };
            await raise(commandRoutes.resync(command.vmId), lifecycleEvents.resyncProgress, event);
            break;
        }
        case 'ResyncCompleted': {
            const disks: PercentByDisk = {};
            for (const diskId of command.diskIds) disks[diskId] = 100;
            const event: ProviderResyncEvent = { vmId: command.vmId, resyncId: command.resyncId, disks, at };
            await raise(commandRoutes.resync(command.vmId), lifecycleEvents.resyncCompleted, event);
            break;
        }
        case 'ResyncDigestRequest': {
            const event: ProviderDigestRequestEvent = {
                vmId: command.vmId,
                resyncId: command.resyncId,
                diskId: command.diskId,
                round: command.round,
                request: command.request,
                at,
            };
            await raise(commandRoutes.resyncDigestRequest(command.vmId), lifecycleEvents.resyncDigestRequest, event);
            break;
        }
        case 'FailoverShutdownCompleted': {
            const event: FailoverShutdownEvent = {
                vmId: command.vmId,
                failoverId: command.failoverId,
                shutDownAt: command.shutDownAt,
                cycleId: command.cycleId,
                logs: command.logs,
                at,
            };
            await raise(
                commandRoutes.failoverShutdownCompleted(command.vmId),
                lifecycleEvents.failoverShutdownCompleted,
                event,
            );
            break;
        }
        case 'FailbackManifestUploaded':
        case 'FailbackLogApplied':
        case 'FailbackCompleted':
        case 'FailbackFailed': {
            const { version: _version, ...fields } = command;
            await raise(commandRoutes.failback(command.vmId), lifecycleEvents.failbackMessage, { ...fields, at });
            break;
        }
        case 'ProviderError': {
            if (command.vmId === undefined) {
                ports.log.warn('Provider reported a site-level error', {
                    siteId,
                    code: command.code,
                    message: command.message,
                    recoverable: command.recoverable,
                });
                notes.push(`site-level ${command.code} logged`);
                break;
            }
            const event: ProviderErrorEvent = {
                vmId: command.vmId,
                code: command.code,
                message: command.message,
                recoverable: command.recoverable,
                at,
            };
            await raise(commandRoutes.providerError(command.vmId), lifecycleEvents.providerError, event);
            break;
        }
    }
    return notes;
}
