import { getEventListeners } from 'node:events';
import { ServiceBusClient, ServiceBusError } from '@azure/service-bus';
import { ServiceBusCommandReceiver } from '../../../shared/bus/commandReceiver';

/** A namespace with no session to accept: every accept ends as Service Bus's "no session available". */
function idleNamespace(): { client: ServiceBusClient; accepts: () => number } {
    let accepts = 0;
    const client = {
        acceptNextSession: async () => {
            accepts++;
            throw new ServiceBusError('No unlocked session is available.', 'ServiceTimeout');
        },
    } as unknown as ServiceBusClient;
    return { client, accepts: () => accepts };
}

describe('ServiceBusCommandReceiver when no session has messages', () => {
    it('leaves no abort listener behind per idle pause, however long it idles', async () => {
        const { client, accepts } = idleNamespace();
        const receiver = new ServiceBusCommandReceiver(client, async () => ({ action: 'complete' }) as never, {
            idlePauseMs: 1,
            maxConcurrentSessions: 4,
        });
        receiver.start();
        const signal = (receiver as unknown as { stopping: AbortController }).stopping.signal;
        let during: number;
        try {
            while (accepts() < 400) await new Promise((r) => setTimeout(r, 5));
            during = getEventListeners(signal, 'abort').length;
        } finally {
            await receiver.stop();
        }
        // One pending pause per session worker at most; before, one listener stayed for every pause ever made.
        expect(during).toBeLessThanOrEqual(4);
        expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    });

    it('stops at once while it pauses', async () => {
        const { client } = idleNamespace();
        const receiver = new ServiceBusCommandReceiver(client, async () => ({ action: 'complete' }) as never, {
            idlePauseMs: 60_000,
        });
        receiver.start();
        await new Promise((r) => setTimeout(r, 50));
        const started = Date.now();
        await receiver.stop();
        expect(Date.now() - started).toBeLessThan(1_000);
    });
});
