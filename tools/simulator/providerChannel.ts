import { randomUUID } from 'node:crypto';
import { ServiceBusClient, ServiceBusReceiver, ServiceBusSender } from '@azure/service-bus';
import { AnonymousCredential, BlockBlobClient } from '@azure/storage-blob';
import { busClientOptions } from '../../shared/bus/busClient';
import { siteSubscriptionName } from '../../shared/bus/entities';
import {
    expectedSessionId,
    PROVIDER_COMMANDS_QUEUE,
    PROVIDER_EVENTS_TOPIC,
    ProviderCommand,
    ProviderEvent,
    UploadGrantEvent,
    UploadGrantItem,
    UploadRequest,
} from '../../shared/contracts/messages';
import { signCommand } from '../../shared/contracts/signature';
import { ensureErrorType } from '../../shared/errors';
import { Clock, systemClock } from '../../shared/ports';
import { deadline } from '../../shared/storage/deadline';

/** The key a site's providers sign with, as registration hands it out (base64 key bytes). */
export interface SiteCredentials {
    siteId: string;
    keyId: string;
    key: string;
}

/** A step of the run that did not complete: the simulator reports it and exits non-zero. */
export class StepIncomplete extends Error {
    constructor(
        readonly step: string,
        detail: string,
    ) {
        super(`${step}: ${detail}`);
        this.name = 'StepIncomplete';
    }
}

interface Waiter {
    matches(event: ProviderEvent): boolean;
    resolve(event: ProviderEvent): void;
    cancel(): void;
}

/** Log uploads are bounded by this (a few MiB locally; a real provider's logs take longer). */
const UPLOAD_TIMEOUT_MS = 120_000;

/**
 * The provider's side of the contract, with the Service Bus SDK as any provider would use it, against the
 * local host's broker or an Azure namespace alike: signed commands go to the queue `provider-commands` in the
 * VM's session, events come from the site's subscription `site-{siteId}` of the topic `provider-events`. Blobs
 * are written only through the SAS URLs of upload grants: the channel holds no storage key.
 */
export class ProviderChannel {
    private readonly client: ServiceBusClient;
    private readonly commands: ServiceBusSender;
    private readonly events: ServiceBusReceiver;
    private subscription?: { close(): Promise<void> };
    private readonly key: Buffer;
    private readonly seen = new Set<string>();
    private readonly inbox: ProviderEvent[] = [];
    private readonly waiters = new Set<Waiter>();
    private readonly listeners: ((event: ProviderEvent) => void)[] = [];
    /** Every command sent, by type (for the summary and the tests). */
    readonly sent = new Map<string, number>();

    constructor(
        readonly site: SiteCredentials,
        busConnectionString: string,
        private readonly clock: Clock = systemClock,
        private readonly log: (line: string) => void = () => undefined,
    ) {
        this.key = Buffer.from(site.key, 'base64');
        this.client = new ServiceBusClient(busConnectionString, busClientOptions());
        this.commands = this.client.createSender(PROVIDER_COMMANDS_QUEUE);
        this.events = this.client.createReceiver(PROVIDER_EVENTS_TOPIC, siteSubscriptionName(site.siteId), {
            receiveMode: 'peekLock',
        });
    }

    start(): void {
        if (this.subscription) return;
        this.subscription = this.events.subscribe(
            {
                processMessage: async (message) => {
                    const body: unknown = message.body;
                    const event = (Buffer.isBuffer(body) ? JSON.parse(body.toString('utf8')) : body) as ProviderEvent;
                    this.receive(String(message.messageId), event);
                },
                processError: async (args) => {
                    this.log(`events from ${args.entityPath}: ${ensureErrorType(args.error).message}`);
                },
            },
            // One at a time, so one VM's events are handled in the order they were sent.
            { maxConcurrentCalls: 1, autoCompleteMessages: true },
        );
    }

    /** Stops receiving and closes the connection; waits still pending end as StepIncomplete. */
    async stop(): Promise<void> {
        for (const waiter of [...this.waiters]) waiter.cancel();
        await this.subscription?.close();
        await this.client.close();
    }

    /** Every event, in arrival order, as it comes (after duplicate removal). */
    onEvent(listener: (event: ProviderEvent) => void): void {
        this.listeners.push(listener);
        for (const event of this.inbox) listener(event);
    }

    private receive(messageId: string, event: ProviderEvent): void {
        // The topic drops a re-send within its duplicate-detection window; one later is still the same event.
        if (this.seen.has(messageId)) return;
        this.seen.add(messageId);
        this.inbox.push(event);
        for (const listener of this.listeners) listener(event);
        for (const waiter of [...this.waiters]) {
            if (waiter.matches(event)) {
                this.waiters.delete(waiter);
                waiter.resolve(event);
            }
        }
    }

    /** The first event (already received or still to come) that `matches`, or StepIncomplete after `timeoutMs`. */
    waitForEvent<E extends ProviderEvent>(
        matches: (event: ProviderEvent) => event is E,
        timeoutMs: number,
        step: string,
        explain: () => Promise<string> = async () => '',
    ): Promise<E> {
        const found = this.inbox.find(matches);
        if (found) return Promise.resolve(found);
        return new Promise<E>((resolve, reject) => {
            const waiter: Waiter = {
                matches,
                resolve: (event) => {
                    clearTimeout(timer);
                    resolve(event as E);
                },
                cancel: () => {
                    clearTimeout(timer);
                    this.waiters.delete(waiter);
                    reject(new StepIncomplete(step, 'the provider stopped before it arrived'));
                },
            };
            const timer = setTimeout(() => {
                this.waiters.delete(waiter);
                explain().then(
                    (why) => reject(new StepIncomplete(step, `nothing arrived within ${timeoutMs / 1000} s. ${why}`)),
                    (err: Error) => reject(new StepIncomplete(step, `nothing arrived; ${err.message}`)),
                );
            }, timeoutMs);
            this.waiters.add(waiter);
        });
    }

    /** Signs and sends one command in its session (the VM, or `site:{siteId}`). */
    async send(command: ProviderCommand): Promise<void> {
        const messageId = randomUUID();
        const sessionId = expectedSessionId(command, this.site.siteId);
        const signed = signCommand(
            command,
            { siteId: this.site.siteId, keyId: this.site.keyId, key: this.key },
            { messageId, sessionId, signedAt: this.clock.now() },
        );
        await this.commands.sendMessages(
            {
                body: signed.body,
                messageId,
                sessionId,
                contentType: signed.contentType,
                applicationProperties: signed.applicationProperties,
            },
            { abortSignal: deadline(30_000) },
        );
        this.sent.set(command.type, (this.sent.get(command.type) ?? 0) + 1);
    }

    /** Asks for write-only upload URLs and waits for the UploadGrant that answers this request. */
    async requestGrants(vmId: string, uploads: UploadRequest[], timeoutMs: number): Promise<UploadGrantItem[]> {
        const requestId = randomUUID();
        const answer = this.waitForEvent(
            (e): e is UploadGrantEvent => e.type === 'UploadGrant' && e.vmId === vmId && e.requestId === requestId,
            timeoutMs,
            `upload grant for ${vmId}`,
            async () =>
                'Is a provider command handler (functions/providerCommands.ts) registered on queue ' +
                `"${PROVIDER_COMMANDS_QUEUE}", and does it know site ${this.site.siteId}'s key and VM ${vmId}? ` +
                `Refused commands are in ${PROVIDER_COMMANDS_QUEUE}'s dead-letter queue (locally) or in ` +
                'provider-commands-rejected (in Azure), with their reason.',
        );
        await this.send({ type: 'UploadGrantRequest', version: 1, vmId, requestId, uploads });
        const grants = (await answer).grants;
        for (const u of uploads) {
            if (!grants.some((g) => g.diskId === u.diskId && g.sequence === u.sequence && g.logId === u.logId)) {
                throw new StepIncomplete(`upload grant for ${vmId}`, `no grant for ${u.diskId} log ${u.sequence}`);
            }
        }
        return grants;
    }
}

/** PUTs one log with its grant's SAS URL (a block blob, with the merge's metadata). */
export async function uploadWithGrant(
    grant: UploadGrantItem,
    log: Buffer,
    metadata: Record<string, string>,
): Promise<void> {
    const blob = new BlockBlobClient(grant.url, new AnonymousCredential());
    await blob.upload(log, log.length, { metadata, abortSignal: deadline(UPLOAD_TIMEOUT_MS) });
}
