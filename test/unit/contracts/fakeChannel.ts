import { logUploadPath } from '../../../shared/contracts/blobNames';
import { ProviderCommandDelivery, ProviderCommandPorts } from '../../../shared/contracts/commandHandler';
import { UploadGrantItem } from '../../../shared/contracts/messages';
import { SeenMessage, SiteKey } from '../../../shared/contracts/providerSites';
import { OutgoingProviderEvent } from '../../../shared/contracts/publisher';
import { signCommand } from '../../../shared/contracts/signature';
import { UploadTarget } from '../../../shared/grants/uploadGrants';

export const NOW = new Date('2025-01-15T10:30:00.000Z');
export const SITE_A = { siteId: 'site-a', keyId: 'k1', key: Buffer.alloc(32, 1) };
export const SITE_B = { siteId: 'site-b', keyId: 'k1', key: Buffer.alloc(32, 2) };

/** Every write the handler made, in order: the "nothing changed" assertions read this. */
export type Write =
    | { kind: 'raise'; instanceId: string; eventName: string; payload: unknown }
    | { kind: 'publish'; event: OutgoingProviderEvent }
    | { kind: 'remember'; siteId: string; messageId: string; seen: SeenMessage }
    | { kind: 'registration'; siteId: string; providerId: string }
    | { kind: 'heartbeat'; siteId: string; providerId: string; vmCount: number; pending: number }
    | { kind: 'grant'; targets: UploadTarget[] };

export interface FakeChannel {
    ports: ProviderCommandPorts;
    writes: Write[];
    logs: { level: 'info' | 'warn'; message: string; fields?: Record<string, unknown> }[];
    seen: Map<string, SeenMessage>;
    runningInstances: Set<string>;
    vmSites: Map<string, string>;
    keys: Map<string, SiteKey>;
    /** What the upload ledger was told by cycle reports (kept apart from `writes`). */
    reported: { vmId: string; cycleId: string; logs: { diskId: string; sequence: number }[] }[];
    /** Makes the next call of a port throw this error. */
    failNext: { port?: 'raise' | 'publish' | 'siteOf' | 'remember'; error?: unknown };
}

export function fakeChannel(): FakeChannel {
    const writes: Write[] = [];
    const logs: FakeChannel['logs'] = [];
    const seen = new Map<string, SeenMessage>();
    /** When each provider's heartbeat last went on to the monitors (ProviderPresence.recordHeartbeat). */
    const monitorsNotified = new Map<string, number>();
    const runningInstances = new Set<string>();
    const vmSites = new Map<string, string>([
        ['vm-a1', 'site-a'],
        ['vm-a2', 'site-a'],
        ['vm-b1', 'site-b'],
    ]);
    const keys = new Map<string, SiteKey>([
        ['site-a/k1', { keyId: 'k1', key: SITE_A.key, revoked: false }],
        ['site-b/k1', { keyId: 'k1', key: SITE_B.key, revoked: false }],
    ]);
    const failNext: FakeChannel['failNext'] = {};
    const maybeFail = (port: NonNullable<FakeChannel['failNext']['port']>) => {
        if (failNext.port === port) {
            const error = failNext.error;
            failNext.port = undefined;
            throw error;
        }
    };
    const reported: FakeChannel['reported'] = [];
    const ports: ProviderCommandPorts = {
        clock: { now: () => new Date(NOW) },
        keys: { siteKey: async (siteId, keyId) => keys.get(`${siteId}/${keyId}`) },
        vms: {
            siteOf: async (vmId) => {
                maybeFail('siteOf');
                return vmSites.get(vmId);
            },
        },
        replay: {
            seen: async (siteId, messageId) => seen.get(`${siteId}/${messageId}`),
            remember: async (siteId, messageId, s) => {
                maybeFail('remember');
                seen.set(`${siteId}/${messageId}`, s);
                writes.push({ kind: 'remember', siteId, messageId, seen: s });
            },
        },
        presence: {
            recordRegistration: async (siteId, registration) => {
                writes.push({ kind: 'registration', siteId, providerId: registration.providerId });
            },
            recordHeartbeat: async (siteId, providerId, at, vmCount, pending, intervalMs) => {
                writes.push({ kind: 'heartbeat', siteId, providerId, vmCount, pending });
                const key = `${siteId}/${providerId}`;
                const last = monitorsNotified.get(key);
                if (last !== undefined && at.getTime() - last < intervalMs) return false;
                monitorsNotified.set(key, at.getTime());
                return true;
            },
        },
        lifecycle: {
            raise: async (instanceId, eventName, payload) => {
                maybeFail('raise');
                writes.push({ kind: 'raise', instanceId, eventName, payload });
                return runningInstances.has(instanceId) ? 'raised' : 'instanceMissing';
            },
        },
        grants: {
            issue: async (targets, at) => {
                writes.push({ kind: 'grant', targets });
                return targets.map((t): UploadGrantItem => ({
                    diskId: t.diskId,
                    sequence: t.sequence,
                    logId: t.logId,
                    blobPath: logUploadPath(t),
                    url: `https://acct.blob.core.windows.net/replica-logs/${t.siteId}/${t.vmId}/x?sp=cw`,
                    expiresOn: new Date(at.getTime() + 30 * 60_000).toISOString(),
                }));
            },
        },
        uploads: {
            cycleReported: async (vmId, cycleId, logs) => {
                reported.push({ vmId, cycleId, logs: logs.map((l) => ({ diskId: l.diskId, sequence: l.sequence })) });
            },
        },
        events: {
            publish: async (event) => {
                maybeFail('publish');
                writes.push({ kind: 'publish', event });
            },
        },
        log: {
            info: (message, fields) => logs.push({ level: 'info', message, fields }),
            warn: (message, fields) => logs.push({ level: 'warn', message, fields }),
        },
    };
    return { ports, writes, logs, seen, runningInstances, vmSites, keys, reported, failNext };
}

let counter = 0;

/** A signed delivery as the SDK receiver would hand it over. */
export function signedDelivery(
    command: Record<string, unknown>,
    options: {
        signer?: { siteId: string; keyId: string; key: Buffer };
        messageId?: string;
        sessionId?: string;
        signedAt?: Date;
        sequenceNumber?: string;
    } = {},
): ProviderCommandDelivery {
    const signer = options.signer ?? SITE_A;
    const sessionId = options.sessionId ?? (typeof command.vmId === 'string' ? command.vmId : `site:${signer.siteId}`);
    const messageId = options.messageId ?? `msg-${++counter}`;
    const signed = signCommand(command, signer, { messageId, sessionId, signedAt: options.signedAt ?? NOW });
    return {
        body: signed.body,
        messageId,
        sessionId,
        sequenceNumber: options.sequenceNumber ?? String(1000 + counter),
        deliveryCount: 1,
        applicationProperties: { ...signed.applicationProperties },
    };
}

export const commands = {
    register: () => ({
        type: 'Register',
        version: 1,
        providerId: 'hv-01',
        kind: 'HyperVHost',
        hostName: 'hv-01.contoso.local',
        providerVersion: '1.0.0',
    }),
    heartbeat: (vmIds: string[] = ['vm-a1', 'vm-a2']) => ({
        type: 'Heartbeat',
        version: 1,
        providerId: 'hv-01',
        vms: vmIds.map((vmId) => ({ vmId, pendingLogBytes: { d0: 1000, d1: 24 } })),
    }),
    initialProgress: (vmId = 'vm-a1') => ({
        type: 'InitialReplicationProgress',
        version: 1,
        vmId,
        disks: { d0: 40, d1: 100 },
    }),
    cycleCompleted: (vmId = 'vm-a1') => ({
        type: 'CycleCompleted',
        version: 1,
        vmId,
        cycleId: 'cycle-7',
        consistency: 'AppConsistent',
        capturedAt: '2025-01-15T10:29:00Z',
        logs: [{ diskId: 'd0', sequence: 7, logId: '7a7a7a7a-0000-4000-8000-000000000007', bytes: 4096 }],
    }),
    grantRequest: (vmId = 'vm-a1') => ({
        type: 'UploadGrantRequest',
        version: 1,
        vmId,
        requestId: 'req-7',
        uploads: [
            { diskId: 'd0', sequence: 7, logId: '7a7a7a7a-0000-4000-8000-000000000007' },
            { diskId: 'd1', sequence: 3, logId: '3a3a3a3a-0000-4000-8000-000000000003' },
        ],
    }),
    resyncProgress: (vmId = 'vm-a1') => ({
        type: 'ResyncProgress',
        version: 1,
        vmId,
        resyncId: 'rs-1',
        disks: { d0: 60 },
    }),
    resyncCompleted: (vmId = 'vm-a1') => ({
        type: 'ResyncCompleted',
        version: 1,
        vmId,
        resyncId: 'rs-1',
        diskIds: ['d0', 'd1'],
    }),
    /** Level 1, nodes 32–47 and 96–127 (encodeDigestRequest, base64). */
    digestRequest: (vmId = 'vm-a1') => ({
        type: 'ResyncDigestRequest',
        version: 1,
        vmId,
        resyncId: 'rs-1',
        diskId: 'd0',
        round: 2,
        request: 'AQIgEDAg',
    }),
    providerError: (vmId: string | null = 'vm-a1') => ({
        type: 'ProviderError',
        version: 1,
        ...(vmId ? { vmId } : {}),
        code: 'VSS_FAILED',
        message: 'VSS writer timed out',
        recoverable: true,
    }),
};
