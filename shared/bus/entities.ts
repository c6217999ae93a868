/**
 * The provider channel's Service Bus entities besides the queue and topic the contract names
 * (`PROVIDER_COMMANDS_QUEUE`, `PROVIDER_EVENTS_TOPIC` in shared/contracts/messages.ts). infra/modules/service-bus.bicep
 * and provider-site.bicep create them in Azure; the local broker creates the same (tools/broker/providerEntities.ts);
 * a test checks the Bicep spells them the same way.
 */

/**
 * Copies of refused commands, with `deadLetterReason` and `deadLetterErrorDescription`: the Functions trigger
 * cannot dead-letter with a reason, so it forwards here (functions/providerCommands.ts).
 */
export const REJECTED_COMMANDS_QUEUE = 'provider-commands-rejected';

/** The application property each site's subscription filters on (a correlation filter). */
export const SITE_FILTER_PROPERTY = 'siteId';

/** A site's subscription on `provider-events`: it receives the events whose `siteId` property names the site. */
export function siteSubscriptionName(siteId: string): string {
    return `site-${siteId}`;
}
