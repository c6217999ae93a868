import { ServiceBusClient, ServiceBusReceivedMessage } from '@azure/service-bus';
import { busClientOptions } from '../../shared/bus/busClient';
import { PROVIDER_COMMANDS_QUEUE } from '../../shared/contracts/messages';
import { ProviderSitesTable } from '../../shared/contracts/providerSites';
import { signCommand } from '../../shared/contracts/signature';
import { connectionFromString } from '../../shared/storage/connections';
import { LocalHost, LocalHostOptions, startLocalHost } from '../../tools/platform';
import { uniqueName } from './azurite';

/** A signer as a provider holds it: the site id, the key id and the key bytes registration handed out. */
export interface Signer {
    siteId: string;
    keyId: string;
    key: Buffer;
}

/**
 * The local host with its own broker (PROVIDER_BUS empty) running the app's provider command trigger, a client
 * on that broker as a provider would hold one, and a registered site with one VM.
 */
export interface LocalProviderChannel {
    host: LocalHost;
    client: ServiceBusClient;
    sites: ProviderSitesTable;
    site: Signer;
    vmId: string;
    lines: string[];
    /** Signs a command as `signer` (default the site) and sends it to provider-commands in `sessionId`. */
    send(
        command: Record<string, unknown>,
        options?: { signer?: Signer; messageId?: string; sessionId?: string; signedAt?: Date },
    ): Promise<string>;
    /** Dead letters of provider-commands, read (and completed) with the SDK. */
    deadLetters(count: number, timeoutMs?: number): Promise<ServiceBusReceivedMessage[]>;
    eventually<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs?: number): Promise<T>;
    stop(): Promise<void>;
}

export async function startLocalProviderChannel(extra: Partial<LocalHostOptions> = {}): Promise<LocalProviderChannel> {
    const lines: string[] = [];
    const storage = process.env.AZURITE_CONNECTION_STRING!;
    const sites = new ProviderSitesTable(connectionFromString(storage));
    const siteId = uniqueName('site');
    const vmId = uniqueName('vm');
    const issued = await sites.registerSite({ siteId, name: 'Paris', timeZone: 'Europe/Paris' }, new Date());
    await sites.assignVm(vmId, siteId, new Date());
    const host = await startLocalHost({
        appRoot: __dirname,
        modules: [require.resolve('../../functions/providerCommands')],
        port: 0,
        storageConnectionString: storage,
        settings: { PROVIDER_BUS: '' },
        blobScanIntervalMs: 0,
        timers: false,
        drainTimeoutMs: 10_000,
        log: (line) => lines.push(line),
        ...extra,
        serviceBus: { receiveWaitMs: 200, pollIntervalMs: 100, ...extra.serviceBus },
    });
    const client = new ServiceBusClient(host.settings.PROVIDER_BUS!, busClientOptions(5_000));
    const sender = client.createSender(PROVIDER_COMMANDS_QUEUE);
    const site = { siteId, keyId: issued.keyId, key: Buffer.from(issued.key, 'base64') };
    let n = 0;

    const eventually = async <T>(
        probe: () => T | undefined | Promise<T | undefined>,
        what: string,
        timeoutMs = 20_000,
    ): Promise<T> => {
        const start = Date.now();
        for (;;) {
            const value = await probe();
            if (value !== undefined) return value;
            if (Date.now() - start > timeoutMs)
                throw new Error(`Timed out waiting for ${what}; host log:\n${lines.join('\n')}`);
            await new Promise((r) => setTimeout(r, 50));
        }
    };

    return {
        host,
        client,
        sites,
        site,
        vmId,
        lines,
        eventually,
        async send(command, options = {}) {
            const messageId = options.messageId ?? `${siteId}-cmd-${++n}`;
            const sessionId = options.sessionId ?? (typeof command.vmId === 'string' ? command.vmId : `site:${siteId}`);
            const signed = signCommand(command, options.signer ?? site, {
                messageId,
                sessionId,
                signedAt: options.signedAt ?? new Date(),
            });
            await sender.sendMessages({
                body: signed.body,
                contentType: signed.contentType,
                messageId,
                sessionId,
                applicationProperties: signed.applicationProperties,
            });
            return messageId;
        },
        async deadLetters(count, timeoutMs = 20_000) {
            const receiver = client.createReceiver(PROVIDER_COMMANDS_QUEUE, { subQueueType: 'deadLetter' });
            const got: ServiceBusReceivedMessage[] = [];
            const until = Date.now() + timeoutMs;
            while (got.length < count && Date.now() < until) {
                const batch = await receiver.receiveMessages(count - got.length, { maxWaitTimeInMs: 1_000 });
                for (const m of batch) await receiver.completeMessage(m);
                got.push(...batch);
            }
            await receiver.close();
            if (got.length < count) {
                throw new Error(`${got.length} of ${count} dead letters arrived; host log:\n${lines.join('\n')}`);
            }
            return got;
        },
        async stop() {
            await client.close();
            await host.stop();
        },
    };
}
