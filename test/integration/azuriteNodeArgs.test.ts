import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { azuriteNodeArgs, startAzurite } from '../../packages/functions-local/src';

describe('HVR_AZURITE_NODE_ARGS: node flags for the Azurite child', () => {
    it('splits flags on spaces and refuses anything that is not a flag', () => {
        expect(azuriteNodeArgs({})).toEqual([]);
        expect(azuriteNodeArgs({ HVR_AZURITE_NODE_ARGS: '  --cpu-prof   --cpu-prof-dir=/tmp/p ' })).toEqual([
            '--cpu-prof',
            '--cpu-prof-dir=/tmp/p',
        ]);
        expect(() => azuriteNodeArgs({ HVR_AZURITE_NODE_ARGS: '--cpu-prof evil.js' })).toThrow(
            'HVR_AZURITE_NODE_ARGS takes node flags only (each starting with --), not "evil.js".',
        );
    });

    it('reaches the child: --cpu-prof writes a profile when Azurite stops', async () => {
        const dir = await mkdtemp(join(tmpdir(), 'azurite-prof-'));
        const before = process.env.HVR_AZURITE_NODE_ARGS;
        process.env.HVR_AZURITE_NODE_ARGS = `--cpu-prof --cpu-prof-dir=${dir}`;
        try {
            const azurite = await startAzurite();
            await azurite.stop();
            const files = await readdir(dir);
            expect(files.filter((f) => f.endsWith('.cpuprofile'))).toHaveLength(1);
        } finally {
            if (before === undefined) delete process.env.HVR_AZURITE_NODE_ARGS;
            else process.env.HVR_AZURITE_NODE_ARGS = before;
            await rm(dir, { recursive: true, force: true });
        }
    }, 120_000);
});
