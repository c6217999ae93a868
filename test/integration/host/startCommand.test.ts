import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appModules, expandBraces } from '../../../packages/functions-local/src';
import { resolveSettings, startLocalHost } from '../../../tools/platform';
import { parseStartArgs, startBanner } from '../../../tools/local-host';

describe('hvr start arguments', () => {
    it('defaults to port 7071, an in-memory Azurite and durable state in storage', () => {
        expect(parseStartArgs([], {})).toEqual({
            options: { port: 7071, durableState: 'storage' },
            noAzurite: false,
            help: false,
        });
        expect(parseStartArgs(['--durable-state', 'memory', '--if-owned=exit'], {}).options).toMatchObject({
            durableState: 'memory',
            ifTaskHubOwned: 'exit',
        });
    });

    it('reads every option, in both --flag value and --flag=value forms', () => {
        const { options, noAzurite } = parseStartArgs(
            [
                '--port=0',
                '--host',
                '0.0.0.0',
                '--azurite-location',
                '/tmp/az',
                '--azurite-port',
                '10000',
                '--key',
                'k1',
            ],
            {},
        );
        expect(noAzurite).toBe(false);
        expect(options).toMatchObject({
            port: 0,
            hostname: '0.0.0.0',
            functionKey: 'k1',
            azurite: { location: '/tmp/az', blobPort: 10000, queuePort: 10001, tablePort: 10002 },
        });
        expect(parseStartArgs(['--no-azurite'], { HVR_FUNCTION_KEY: 'from-env' })).toMatchObject({
            noAzurite: true,
            options: { functionKey: 'from-env' },
        });
    });

    it.each([
        [['--port', '70000'], /--port needs a whole number up to 65535, got "70000"/],
        [['--port'], /--port needs a value/],
        [['--drain-timeout', '-1'], /--drain-timeout needs a whole number/],
        [['--bogus'], /Unknown option "--bogus"/],
        [['--durable-state', 'disk'], /--durable-state is one of storage, memory; got "disk"/],
        [['--if-owned', 'later'], /--if-owned is one of wait, exit; got "later"/],
        [['--no-azurite', '--location', 'x'], /cannot be combined/],
    ])('rejects %j', (argv, message) => {
        expect(() => parseStartArgs(argv, {})).toThrow(message);
    });
});

describe('what the host loads and which settings it gives the app', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'hvr-app-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("loads exactly the files package.json's main glob names", () => {
        writeFileSync(join(dir, 'package.json'), JSON.stringify({ main: 'dist/{functions,orchestrations}/*.js' }));
        for (const file of [
            'dist/functions/a.js',
            'dist/functions/a.js.map',
            'dist/orchestrations/b.js',
            'dist/shared/c.js',
        ]) {
            mkdirSync(join(dir, file, '..'), { recursive: true });
            writeFileSync(join(dir, file), '');
        }
        expect(appModules(dir)).toEqual([join(dir, 'dist/functions/a.js'), join(dir, 'dist/orchestrations/b.js')]);
        expect(expandBraces('x/{a,b}/{c,d}.js')).toEqual(['x/a/c.js', 'x/a/d.js', 'x/b/c.js', 'x/b/d.js']);
    });

    it('says to build when nothing matches', () => {
        writeFileSync(join(dir, 'package.json'), JSON.stringify({ main: 'dist/functions/*.js' }));
        expect(() => appModules(dir)).toThrow(/matches no file.*npm run build/);
    });

    it('takes local.settings.json Values, lets the environment win, and points dev storage at the embedded Azurite', () => {
        writeFileSync(
            join(dir, 'local.settings.json'),
            JSON.stringify({
                Values: {
                    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
                    REPLICA_STORAGE: 'UseDevelopmentStorage=true',
                    MERGE_CONCURRENCY: '8',
                    HOST_TEST_FROM_ENV: 'file',
                },
            }),
        );
        process.env.HOST_TEST_FROM_ENV = 'env';
        try {
            const azurite = process.env.AZURITE_CONNECTION_STRING!;
            const settings = resolveSettings(dir, azurite, true, { EXTRA: 'x' });
            expect(settings).toMatchObject({
                AzureWebJobsStorage: azurite,
                REPLICA_STORAGE: azurite,
                MERGE_CONCURRENCY: '8',
                HOST_TEST_FROM_ENV: 'env',
                EXTRA: 'x',
                DURABLE_TASK_HUB: 'hvrlocal',
                FUNCTIONS_WORKER_RUNTIME: 'node',
            });
        } finally {
            delete process.env.HOST_TEST_FROM_ENV;
        }
    });

    it('rejects a local.settings.json that is not JSON, naming the file', () => {
        writeFileSync(join(dir, 'local.settings.json'), '{ nope');
        expect(() => resolveSettings(dir, process.env.AZURITE_CONNECTION_STRING!, true)).toThrow(
            /local\.settings\.json is not valid JSON/,
        );
    });
});

describe('the start banner', () => {
    it('prints the API URL, the key and every function with its trigger', async () => {
        const host = await startLocalHost({
            appRoot: __dirname,
            modules: [require.resolve('./fixtures/httpApp')],
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            functionKey: 'fixed-key',
            log: () => undefined,
        });
        try {
            const banner = startBanner(host);
            expect(banner).toContain(`API base URL    ${host.apiUrl}`);
            expect(banner).toContain('Function key    fixed-key');
            expect(banner).toMatch(
                new RegExp(`http +fixtureGetVm +GET ${host.apiUrl}/vms/\\{vmId\\} \\(key: function\\)`),
            );
            // What a provider needs to connect to the local broker.
            expect(banner).toContain(`Provider bus    PROVIDER_BUS=${host.settings.PROVIDER_BUS}`);
            expect(host.settings.PROVIDER_BUS).toMatch(
                /^Endpoint=sb:\/\/127\.0\.0\.1:\d+;.*UseDevelopmentEmulator=true$/,
            );
            expect(parseStartArgs(['--bus-port', '5672']).options.serviceBus).toEqual({ brokerPort: 5672 });
            expect(banner).toContain('Press Ctrl-C to stop.');
        } finally {
            await host.stop();
        }
    });
});
