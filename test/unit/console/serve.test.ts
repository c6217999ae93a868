import { main, parseSimulateArgs } from '../../../tools/simulate';

describe('hvr simulate --serve', () => {
    it('is off by default and on with the flag', () => {
        expect(parseSimulateArgs(['--out', 'd']).serve).toBe(false);
        expect(parseSimulateArgs(['--out', 'd', '--serve']).serve).toBe(true);
    });

    it('refuses to serve a pipeline it did not start (HVR_API_URL), with exit code 2 and the reason', async () => {
        const saved = { ...process.env };
        const writes: string[] = [];
        const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
            writes.push(String(chunk));
            return true;
        });
        try {
            Object.assign(process.env, {
                HVR_API_URL: 'http://127.0.0.1:1/api',
                HVR_FUNCTION_KEY: 'k',
                AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
                HVR_PROVIDER_BUS: 'Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=a;SharedAccessKey=b',
            });
            expect(await main(['--out', '/tmp/never', '--serve'])).toBe(2);
            expect(writes.join('')).toContain('--serve keeps the local host up; it cannot serve HVR_API_URL');
        } finally {
            write.mockRestore();
            process.env = saved;
        }
    });
});
