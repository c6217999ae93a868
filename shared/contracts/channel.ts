import { DurableClient } from 'durable-functions';
import { integerSetting } from '../config';
import { BlobUploadGrants } from '../grants/uploadGrants';
import { LedgeredUploadGrants } from '../grants/ledgeredGrants';
import { DiskCheckedUploadGrants, protectedItemDisks } from '../grants/vmDisks';
import { stateScope } from '../state/protectedItems';
import { recordCycleReported } from '../state/uploadLedger';
import { LifecycleEventName } from '../lifecycle/instances';
import { ports } from '../ports';
import { ChannelLog, LifecycleRaiser, ProviderCommandPorts } from './commandHandler';
import { ProviderSitesTable } from './providerSites';

/**
 * Raises lifecycle events through the durable client. A 404 (no such instance) is an answer the handler
 * records, not a failure: a heartbeat for a VM whose monitor is not running must not bounce the message.
 */
export function durableLifecycleRaiser(client: Pick<DurableClient, 'raiseEvent'>): LifecycleRaiser {
    return {
        async raise(instanceId: string, eventName: LifecycleEventName, payload: unknown) {
            try {
                await client.raiseEvent(instanceId, eventName, payload);
                return 'raised';
            } catch (err) {
                if (err instanceof Error && /^No instance with ID '.*' found\.$/.test(err.message)) {
                    return 'instanceMissing';
                }
                throw err;
            }
        },
    };
}

type ChannelParts = Omit<ProviderCommandPorts, 'lifecycle' | 'log'> & { lifecycle?: LifecycleRaiser };

let overrides: Partial<ChannelParts> = {};

/** Replaces parts of the provider channel (tests, the local host). Returns a function restoring the old ones. */
export function setProviderChannel(parts: Partial<ChannelParts>): () => void {
    const previous = overrides;
    overrides = { ...overrides, ...parts };
    return () => {
        overrides = previous;
    };
}

/**
 * The ports the command handler runs with in the app: the site registry and replay window in the
 * `providerSites` / `providerMessageIds` tables, upload grants over the REPLICA_STORAGE account (recorded with
 * the cycle reports in the upload ledger),
 * events through `ports().providerEvents()`, lifecycle events through the given durable client.
 */
export function providerCommandPorts(
    durableClient: () => Pick<DurableClient, 'raiseEvent'>,
    log: ChannelLog,
): ProviderCommandPorts {
    const needsStorage =
        !overrides.keys || !overrides.vms || !overrides.replay || !overrides.presence || !overrides.grants;
    const sites = needsStorage ? new ProviderSitesTable(ports().storage()) : undefined;
    return {
        clock: overrides.clock ?? ports().clock,
        keys: overrides.keys ?? sites!,
        vms: overrides.vms ?? sites!,
        replay: overrides.replay ?? sites!,
        presence: overrides.presence ?? sites!,
        grants:
            overrides.grants ??
            new DiskCheckedUploadGrants(
                new LedgeredUploadGrants(
                    new BlobUploadGrants(ports().storage(), {
                        ttlMinutes: integerSetting('UPLOAD_GRANT_TTL_MINUTES', 30),
                    }),
                    stateScope(),
                ),
                protectedItemDisks(stateScope()),
            ),
        uploads: overrides.uploads ?? {
            cycleReported: (vmId, cycleId, logs, at) => recordCycleReported(stateScope(), vmId, cycleId, logs, at),
        },
        events: overrides.events ?? ports().providerEvents(),
        lifecycle: overrides.lifecycle ?? durableLifecycleRaiser(durableClient()),
        log,
        freshness: overrides.freshness,
    };
}
