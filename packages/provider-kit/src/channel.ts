import { randomUUID } from 'node:crypto';
import { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver, ServiceBusSender } from '@azure/service-bus';
import {
    boundedBusCall,
    busClientOptions,
    DEFAULT_BUS_TIMEOUT_MS,
    deadline,
    ensureErrorType,
    eventSchemas,
    expectedSessionId,
    HvrError,
    PROVIDER_COMMANDS_QUEUE,
    PROVIDER_EVENTS_TOPIC,
    ProviderCommand,
    ProviderEvent,
    signCommand,
    siteSubscriptionName,
    UploadGrantEvent,
    UploadGrantItem,
    UploadRequest,
    validateCommand,
    validateEvent,
} from './core';

/** The key a site's providers sign with, as registration hands it out (`siteKey`: base64 key bytes). */
export interface SiteCredentials {
    siteId: string;
    keyId: string;
    key: string;
}

/** A wait or a step that did not complete: which, and why. */
export class StepIncomplete extends Error {
    constructor(
        readonly step: string,
        detail: string,
    ) {
        super(`${step}: ${detail}`);
        this.name = 'StepIncomplete';
    }
}

/** The event types of contract version 1, from the core's schemas (a provider ignores, and completes, any other). */
const KNOWN_EVENTS: ReadonlySet<string> = new Set(Object.keys(eventSchemas));

/** Bounds each send and each settlement: the SDK's own operation timeout (shared/bus/busClient.ts). */
const SEND_TIMEOUT_MS = DEFAULT_BUS_TIMEOUT_MS;

interface Waiter {
    matches(event: ProviderEvent): boolean;
    resolve(event: ProviderEvent): void;
    cancel(): void;
}

export interface ProviderChannelOptions {
    /** When a command is signed (tests move it); the system clock by default. */
    now?: () => Date;
    /** Lines about the channel itself (a refused event, a receive error). */
    log?: (line: string) => void;
}

/**
 * The provider's side of the channel with the real Service Bus SDK, the same against Azure and the local
 * host's broker: commands are checked against their JSON Schema, signed (HVR-HMAC-SHA256) and sent to queue
 * `provider-commands` in their session (the VM id, or `site:{siteId}`); events come from the site's subscription
 * `site-{siteId}` of topic `provider-events` in peek-lock, each checked against its schema, completed once the
 * listeners have it, and dead-lettered (with the schema's reason) if it does not pass. The broker numbers
 * messages; the channel never does.
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
    private readonly now: () => Date;
    private readonly log: (line: string) => void;
    /** Every command sent, by type. */
    readonly sent = new Map<string, number>();

    constructor(
        readonly site: SiteCredentials,
        busConnectionString: string,
        options: ProviderChannelOptions = {},
    ) {
        this.key = Buffer.from(site.key, 'base64');
        if (this.key.length === 0)
            throw new HvrError('VALIDATION_FAILED', `site ${site.siteId}: the site key is empty.`);
        this.now = options.now ?? (() => new Date());
        this.log = options.log ?? (() => undefined);
        this.client = new ServiceBusClient(busConnectionString, busClientOptions());
        this.commands = this.client.createSender(PROVIDER_COMMANDS_QUEUE);
        this.events = this.client.createReceiver(PROVIDER_EVENTS_TOPIC, siteSubscriptionName(site.siteId), {
            receiveMode: 'peekLock',
        });
    }

    /** Starts receiving the site's events. */
    start(): void {
        if (this.subscription) return;
        this.subscription = this.events.subscribe(
            {
                processMessage: async (message) => this.settle(message),
                processError: async (args) => {
                    this.log(`events from ${args.entityPath}: ${ensureErrorType(args.error).message}`);
                },
            },
            // One at a time, so one VM's events are handled in the order they were sent.
            { maxConcurrentCalls: 1, autoCompleteMessages: false },
        );
    }

    private async settle(message: ServiceBusReceivedMessage): Promise<void> {
        const raw: unknown = message.body;
        let body: unknown;
        try {
            body = Buffer.isBuffer(raw) ? JSON.parse(raw.toString('utf8')) : raw;
        } catch {
            await this.refuse(message, 'MESSAGE_NOT_JSON', 'the event body is not JSON');
            return;
        }
        const type = (body as { type?: unknown } | null)?.type;
        if (typeof type !== 'string' || !KNOWN_EVENTS.has(type)) {
            // A newer event type within version 1: ignored, as the contract says.
            this.log(`event ${String(message.messageId)} of unknown type ${JSON.stringify(type)} ignored`);
            await this.settleBounded('complete', message, this.events.completeMessage(message));
            return;
        }
        let event: ProviderEvent;
        try {
            event = validateEvent(body);
        } catch (err) {
            const code = err instanceof HvrError ? err.code : 'MESSAGE_INVALID';
            await this.refuse(message, code, ensureErrorType(err).message);
            return;
        }
        this.receive(String(message.messageId), event);
        await this.settleBounded('complete', message, this.events.completeMessage(message));
    }

    /**
     * Events are handled one at a time, so a settlement that never answers would hold back every later event of
     * the site: each is bounded (boundedBusCall). One that fails leaves the event to come again, and it is
     * dropped then as already seen.
     */
    private async settleBounded(what: string, message: ServiceBusReceivedMessage, call: Promise<void>): Promise<void> {
        try {
            await boundedBusCall(call, {
                what,
                timeoutMs: SEND_TIMEOUT_MS,
                closed: () => this.events.isClosed,
                details: { messageId: message.messageId },
            });
        } catch (err) {
            this.log(`event ${String(message.messageId)}: ${what} failed: ${ensureErrorType(err).message}`);
        }
    }

    private async refuse(message: ServiceBusReceivedMessage, reason: string, description: string): Promise<void> {
        this.log(`event ${String(message.messageId)} refused: ${reason}: ${description}`);
        await this.settleBounded(
            'dead-letter',
            message,
            this.events.deadLetterMessage(message, {
                deadLetterReason: reason,
                deadLetterErrorDescription: description.slice(0, 1024),
            }),
        );
    }

    /** Stops receiving and closes the connection; waits still pending end as StepIncomplete. */
    async stop(): Promise<void> {
        for (const waiter of [...this.waiters]) waiter.cancel();
        await this.subscription?.close();
        await this.client.close();
    }

    /** Every event, in arrival order, as it comes (after duplicate removal); earlier ones are replayed. */
    onEvent(listener: (event: ProviderEvent) => void): void {
        this.listeners.push(listener);
        for (const event of this.inbox) listener(event);
    }

    private receive(messageId: string, event: ProviderEvent): void {
        // The topic drops a re-send within its duplicate-detection window; one later is still the same event.
        if (this.seen.has(messageId)) return;
        this.seen.add(messageId);
        this.inbox.push(event);
        for (const listener of this.listeners) {
            try {
                listener(event);
            } catch (err) {
                this.log(`a listener of ${event.type} failed: ${ensureErrorType(err).message}`);
            }
        }
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
                    (why) =>
                        reject(new StepIncomplete(step, `nothing arrived within ${timeoutMs / 1000} s. ${why}`.trim())),
                    (err: Error) => reject(new StepIncomplete(step, `nothing arrived; ${err.message}`)),
                );
            }, timeoutMs);
            this.waiters.add(waiter);
        });
    }

    /**
     * Checks the command against its schema (VALIDATION_FAILED naming the field; nothing is sent), signs it and
     * sends it in its session. `messageId`: pass the one of an earlier attempt to re-send the same command.
     */
    async send(command: ProviderCommand, messageId: string = randomUUID()): Promise<string> {
        try {
            validateCommand(command);
        } catch (err) {
            const why = ensureErrorType(err).message;
            throw new HvrError('VALIDATION_FAILED', `${command.type} not sent: ${why}`, { command: command.type });
        }
        const sessionId = expectedSessionId(command, this.site.siteId);
        const signed = signCommand(
            command,
            { siteId: this.site.siteId, keyId: this.site.keyId, key: this.key },
            { messageId, sessionId, signedAt: this.now() },
        );
        await this.commands.sendMessages(
            {
                body: signed.body,
                messageId,
                sessionId,
                contentType: signed.contentType,
                applicationProperties: signed.applicationProperties,
            },
            { abortSignal: deadline(SEND_TIMEOUT_MS) },
        );
        this.sent.set(command.type, (this.sent.get(command.type) ?? 0) + 1);
        return messageId;
    }

    /** Asks for write-only upload URLs and waits for the UploadGrant that answers this request (its requestId). */
    async requestGrants(vmId: string, uploads: UploadRequest[], timeoutMs: number): Promise<UploadGrantItem[]> {
        const requestId = randomUUID();
        const step = `upload grant for ${vmId}`;
        const answer = this.waitForEvent(
            (e): e is UploadGrantEvent => e.type === 'UploadGrant' && e.vmId === vmId && e.requestId === requestId,
            timeoutMs,
            step,
            async () =>
                `Was the request refused? Refused commands are in ${PROVIDER_COMMANDS_QUEUE}'s dead-letter queue ` +
                '(the local host, or a namespace read with the SDK) or in provider-commands-rejected (the Azure ' +
                `Functions trigger), with their reason. Does the pipeline know site ${this.site.siteId} and VM ${vmId}?`,
        );
        // The wait is armed before the send, so an answer that comes at once is not missed.
        answer.catch(() => undefined);
        await this.send({ type: 'UploadGrantRequest', version: 1, vmId, requestId, uploads });
        const grants = (await answer).grants;
        for (const u of uploads) {
            if (!grants.some((g) => sameLog(g, u))) {
                throw new StepIncomplete(step, `no grant for ${u.diskId} log ${u.sequence}`);
            }
        }
        return grants;
    }
}

/** Whether a grant is for that log (the pipeline names logs in lower case). */
export function sameLog(a: UploadRequest, b: UploadRequest): boolean {
    return a.diskId === b.diskId && a.sequence === b.sequence && a.logId.toLowerCase() === b.logId.toLowerCase();
}
