/**
 * The durable webhooks as the app's callers see them. The durable runtime (embedded or the real engine) serves
 * its HTTP API on a loopback port that checks no key; the only way in from outside is the front door's
 * `/runtime/webhooks/durabletask/*`, which requires the `durabletask_extension` system key, as Azure does. So
 * every webhook URL the app is handed (the durable client binding, the links in a status reply) is rewritten
 * to the front door's origin with that key as `code`, and the internal RPC base URL is left as it is: the app's
 * own client calls go there directly, over loopback.
 */

export const DURABLE_WEBHOOK_PATH = '/runtime/webhooks/durabletask';

export interface WebhookFace {
    /** Where the durable runtime listens, e.g. `http://127.0.0.1:41234`. */
    internalOrigin: string;
    /** The front door, e.g. `http://127.0.0.1:7071`. */
    publicOrigin: string;
    /** The `durabletask_extension` system key. */
    key: string;
}

function escapeRegExp(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Rewrites every webhook URL (and bare `code=` parameter list) inside `text`: internal origin → public origin,
 * `code=<anything>` → `code=<key>`. URL templates (`{eventName}`, `[/{instanceId}]`) survive untouched.
 */
export function publicWebhookText(text: string, face: WebhookFace): string {
    const internal = new RegExp(`${escapeRegExp(face.internalOrigin)}${escapeRegExp(DURABLE_WEBHOOK_PATH)}`, 'g');
    const code = encodeURIComponent(face.key);
    return text
        .replace(internal, `${face.publicOrigin}${DURABLE_WEBHOOK_PATH}`)
        .replace(
            new RegExp(
                `(${escapeRegExp(face.publicOrigin)}${escapeRegExp(DURABLE_WEBHOOK_PATH)}[^\\s"']*?[?&])code=[^&\\s"']*`,
                'g',
            ),
            `$1code=${code}`,
        )
        .replace(
            new RegExp(`${escapeRegExp(face.publicOrigin)}${escapeRegExp(DURABLE_WEBHOOK_PATH)}[^\\s"']*`, 'g'),
            // The real engine builds its links with no key at all: add it.
            (url) => (/[?&]code=/.test(url) ? url : `${url}${url.includes('?') ? '&' : '?'}code=${code}`),
        );
}

/** The durable client binding with its webhook URLs on the front door and carrying the system key. */
export function publicClientBinding(binding: unknown, face: WebhookFace): unknown {
    if (typeof binding !== 'object' || binding === null) return binding;
    const copy: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(binding)) {
        if (name === 'rpcBaseUrl') copy[name] = value;
        else if (name === 'requiredQueryStringParameters' && typeof value === 'string')
            copy[name] = value.replace(/(^|&)code=[^&]*/, `$1code=${encodeURIComponent(face.key)}`);
        else if (typeof value === 'string') copy[name] = publicWebhookText(value, face);
        else copy[name] = publicClientBinding(value, face);
    }
    return copy;
}
