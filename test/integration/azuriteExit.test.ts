import { startAzurite } from '../../packages/functions-local/src';

describe('the Azurite child says how it ended', () => {
    it('as expected after stop()', async () => {
        const azurite = await startAzurite();
        await azurite.stop();
        await expect(azurite.exited).resolves.toMatchObject({ expected: true });
    }, 120_000);

    it('unexpectedly when its process dies, with the signal and its last line of output', async () => {
        const azurite = await startAzurite();
        try {
            process.kill(azurite.pid, 'SIGKILL');
            const exit = await azurite.exited;
            expect(exit).toMatchObject({ expected: false, signal: 'SIGKILL', code: null });
            expect(exit.reason).toMatch(/\S/);
        } finally {
            await azurite.stop();
        }
    }, 120_000);
});
