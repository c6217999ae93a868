import { CONTRACT_VERSION, ProviderEvent } from './messages';
import { validateEvent } from './validate';

/** Events the pipeline sends to on-premises providers (topic `provider-events`, a subscription per site). */
export type ProviderEventType =
    | 'StartReplication'
    | 'UploadGrant'
    | 'StartResync'
    | 'StopReplication'
    | 'PolicyChanged'
    | 'ShutdownForFailover'
    | 'CancelFailoverShutdown'
    | 'StartFailback'
    | 'FailbackLogReady'
    | 'CompleteFailback'
    | 'CancelFailback';

export interface OutgoingProviderEvent {
    type: ProviderEventType;
    /** The site whose provider must receive it; the topic's per-site subscription filters on it. */
    siteId: string;
    /** Set for VM-scoped events; providers keep one VM's events in order. */
    vmId?: string;
    /**
     * The event's body, as the published JSON Schema for `type` describes it. `type` and `version` may be left
     * out: the publisher adds them.
     */
    payload: Record<string, unknown>;
    /** Idempotency key: a re-sent event with the same id is a duplicate (Service Bus duplicate detection). */
    messageId?: string;
}

/** The port through which activities talk to providers. Adapters: Service Bus, and a local one for the host. */
export interface ProviderEventPublisher {
    publish(event: OutgoingProviderEvent, options?: { abortSignal?: AbortSignal }): Promise<void>;
}

/**
 * The JSON body of an event, checked against its published schema: the pipeline never sends what a provider
 * would have to reject. Throws MESSAGE_INVALID / MESSAGE_UNKNOWN_TYPE naming the offending field.
 */
export function providerEventBody(event: OutgoingProviderEvent): ProviderEvent {
    return validateEvent({ ...event.payload, type: event.type, version: CONTRACT_VERSION });
}
