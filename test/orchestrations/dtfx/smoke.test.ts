import { functionRegistry } from '../../../tools/host/registry';
import { DtfxEngine } from '../../../tools/durable/dtfx';
import { uniqueName } from '../../support/azurite';
import '../fixtures/chain';

describe('dtfx smoke', () => {
    it('runs a chain', async () => {
        const lines: string[] = [];
        const engine = await DtfxEngine.start({
            registry: functionRegistry(),
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            taskHub: uniqueName('hub').replace(/[^a-z0-9]/g, ''),
            log: (l) => lines.push(l),
        });
        try {
            console.log(JSON.stringify(await engine.clientBinding()));
            const id = await engine.startNew('fixtureChain', { input: ['a', 'b', 'c'] });
            const status = await engine.waitForStatus(
                id,
                (s) => s.runtimeStatus !== 'Pending' && s.runtimeStatus !== 'Running',
            );
            console.log(JSON.stringify(status));
        } catch (e) {
            console.log(lines.filter((l) => !l.includes('MS_DURABLE')).join('\n'));
            throw e;
        } finally {
            await engine.close();
        }
    });
});
