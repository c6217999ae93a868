import { createHmac } from 'node:crypto';
import { optionalSetting } from '../config';
import { HvrError } from '../errors';
import { Outcome, outcomeOf } from '../retry';
import { PlanOperation, WebhookAction } from './recoveryPlan';

/**
 * A plan's webhook action: one POST to the URL held by the action's `urlSetting`, signed with the secret held by
 * its `secretSetting`, bounded by its `timeoutSeconds`. The receiver checks
 * `x-hvr-signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>` and may deduplicate on
 * `x-hvr-delivery` (the same for every attempt of one step of one job). A 2xx answer completes the action; a 4xx
 * is final (the receiver refused: fix it, then retry the plan); a 5xx, a network error or the timeout is retried
 * on the retry schedule for a few minutes.
 */

export const WEBHOOK_SIGNATURE_HEADER = 'x-hvr-signature';
export const WEBHOOK_DELIVERY_HEADER = 'x-hvr-delivery';

export interface WebhookCall {
    action: WebhookAction;
    planName: string;
    jobId: string;
    operation: PlanOperation;
    group: number;
    side: 'pre' | 'post';
    /** Stable per step and job. */
    deliveryId: string;
    at: string;
}

/** The body the receiver gets. */
export function webhookBody(call: WebhookCall): string {
    return JSON.stringify({
        recoveryPlan: call.planName,
        jobId: call.jobId,
        operation: call.operation,
        group: call.group,
        side: call.side,
        action: call.action.name,
        deliveryId: call.deliveryId,
        at: call.at,
    });
}

export function webhookSignature(secret: string, body: string): string {
    return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

function setting(name: string, action: string): string {
    const value = optionalSetting(name);
    if (value === undefined || value.trim() === '') {
        throw new HvrError(
            'PREREQUISITE_FAILED',
            `Webhook action "${action}" needs the app setting ${name}, which is not set.`,
            { setting: name },
        );
    }
    return value;
}

/** Calls the webhook once; the Outcome says whether to retry (recoverable) or stop. */
export async function callPlanWebhook(
    call: WebhookCall,
    fetchFn: typeof fetch = fetch,
): Promise<Outcome<{ status: number }>> {
    return outcomeOf(async () => {
        const { action } = call;
        const url = setting(action.urlSetting, action.name);
        const secret = setting(action.secretSetting, action.name);
        if (!/^https?:\/\//i.test(url)) {
            throw new HvrError(
                'PREREQUISITE_FAILED',
                `Webhook action "${action.name}": setting ${action.urlSetting} must hold an http(s) URL.`,
            );
        }
        const body = webhookBody(call);
        let response: Response;
        try {
            response = await fetchFn(url, {
                method: 'POST',
                headers: {
                    'Content-Type': 'application/json',
                    [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(secret, body),
                    [WEBHOOK_DELIVERY_HEADER]: call.deliveryId,
                },
                body,
                signal: AbortSignal.timeout(action.timeoutSeconds * 1000),
                redirect: 'manual',
            });
        } catch (err) {
            const name = (err as Error).name;
            if (name === 'TimeoutError' || name === 'AbortError') {
                throw new HvrError(
                    'TIMEOUT',
                    `Webhook action "${action.name}" did not answer within ${action.timeoutSeconds} s.`,
                );
            }
            throw new HvrError(
                'TRANSIENT',
                `Webhook action "${action.name}" could not be called: ${(err as Error).message}`,
            );
        }
        // The body is not read beyond a few bytes: the receiver's answer only says yes or no.
        await response.body?.cancel().catch(() => undefined);
        if (response.status >= 200 && response.status < 300) return { status: response.status };
        if (response.status >= 500 || response.status === 408 || response.status === 429) {
            throw new HvrError('TRANSIENT', `Webhook action "${action.name}" answered HTTP ${response.status}.`);
        }
        throw new HvrError(
            'PREREQUISITE_FAILED',
            `Webhook action "${action.name}" answered HTTP ${response.status}: the receiver refused the call.`,
        );
    });
}
