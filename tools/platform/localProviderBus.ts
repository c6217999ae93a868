import { siteSubscriptionName } from '../../shared/bus/entities';
import { PROVIDER_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC } from '../../shared/contracts/messages';
import { OutgoingProviderEvent, ProviderEventPublisher } from '../../shared/contracts/publisher';
import { ensureErrorType } from '../../shared/errors';
import { stateScope } from '../../shared/state/protectedItems';
import { listSites } from '../../shared/state/sites';
import { LocalServiceBus } from '../../packages/functions-local/src';
import { createProviderEntities, createSiteSubscription, ProviderEntityOptions } from './providerEntities';

export interface LocalProviderBusOptions extends ProviderEntityOptions {
    /** Interface for the broker. Default 127.0.0.1 (it authenticates no one). */
    host?: string;
    /** Broker port; 0 (default) for any free one. */
    port?: number;
    /** Largest message accepted; default 256 KiB as the Standard tier infra deploys. */
    maxMessageSizeBytes?: number;
    /** How often registered sites are looked up to create their subscriptions. Default 1 s; 0 only at start. */
    siteScanIntervalMs?: number;
    log: (line: string) => void;
}

/**
 * The provider channel of the local host: a Service Bus broker on loopback (the local platform's LocalServiceBus) holding what infra
 * creates in Azure, with a subscription `site-{siteId}` for every registered site (found at start, then every
 * `siteScanIntervalMs`, and at the latest when an event for the site is published). Providers connect with
 * `connectionString` and the real Service Bus SDK.
 */
export class LocalProviderBus {
    private timer?: NodeJS.Timeout;
    private scanning?: Promise<void>;

    private constructor(
        readonly broker: LocalServiceBus,
        private readonly options: LocalProviderBusOptions,
    ) {}

    static async start(options: LocalProviderBusOptions): Promise<LocalProviderBus> {
        const broker = await LocalServiceBus.start({
            host: options.host,
            port: options.port,
            maxMessageSizeBytes: options.maxMessageSizeBytes,
        });
        createProviderEntities(broker, options);
        return new LocalProviderBus(broker, options);
    }

    /** Creates the subscriptions of the sites registered now, then keeps looking (once the app's storage is set). */
    async watchSites(): Promise<void> {
        await this.scanSites();
        const every = this.options.siteScanIntervalMs ?? 1_000;
        if (every > 0 && !this.timer) {
            this.timer = setInterval(() => void this.scanSites(), every);
            this.timer.unref();
        }
    }

    get connectionString(): string {
        return this.broker.connectionString;
    }

    /** The lines printed at start: what a provider needs to connect. */
    describe(): string[] {
        return [
            `Provider bus (local Service Bus, AMQP on ${this.connectionString.split(';')[0]!.replace('Endpoint=', '')}):`,
            `  PROVIDER_BUS=${this.connectionString}`,
            `  send commands to queue ${PROVIDER_COMMANDS_QUEUE} (sessions); read events from topic ` +
                `${PROVIDER_EVENTS_TOPIC}, subscription ${siteSubscriptionName('{siteId}')}`,
        ];
    }

    /** Creates a site's subscription now if it has none (idempotent). */
    ensureSite(siteId: string): void {
        if (createSiteSubscription(this.broker, siteId, this.options)) {
            this.options.log(
                `Provider bus: subscription ${PROVIDER_EVENTS_TOPIC}/${siteSubscriptionName(siteId)} created for site ${siteId}`,
            );
        }
    }

    /** Wraps a publisher so that no event finds its site without a subscription. */
    publisher(inner: ProviderEventPublisher): ProviderEventPublisher {
        return {
            publish: (event: OutgoingProviderEvent, opts?: { abortSignal?: AbortSignal }) => {
                this.ensureSite(event.siteId);
                return inner.publish(event, opts);
            },
        };
    }

    scanSites(): Promise<void> {
        this.scanning ??= (async () => {
            try {
                for (const site of await listSites(stateScope())) this.ensureSite(site.siteId);
            } catch (err) {
                this.options.log(`Provider bus: looking up registered sites failed: ${ensureErrorType(err).message}`);
            } finally {
                this.scanning = undefined;
            }
        })();
        return this.scanning;
    }

    async stop(): Promise<void> {
        clearInterval(this.timer);
        await this.scanning;
        await this.broker.stop();
    }
}
