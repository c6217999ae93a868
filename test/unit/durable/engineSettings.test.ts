import { durableTimeScale, scaledMs } from '../../../shared/durableTime';
import { retryDelay } from '../../../shared/retry';
import { findDtfxPrerequisites, durableEngineOf } from '../../../packages/functions-local/src';
import { parseStartArgs } from '../../../tools/local-host';
import { parseSimulateArgs } from '../../../tools/simulate';

describe('choosing the Durable engine', () => {
    it('takes --durable over HVR_DURABLE, defaults to embedded and names the bad value', () => {
        expect(durableEngineOf(undefined, {})).toBe('embedded');
        expect(durableEngineOf(undefined, { HVR_DURABLE: 'DTFX' })).toBe('dtfx');
        expect(durableEngineOf('embedded', { HVR_DURABLE: 'dtfx' })).toBe('embedded');
        expect(() => durableEngineOf(undefined, { HVR_DURABLE: 'azure' })).toThrow(
            'HVR_DURABLE must be one of embedded, dtfx; got "azure"',
        );
        expect(() => durableEngineOf('func', {})).toThrow('--durable must be one of embedded, dtfx; got "func"');
    });

    it('reads --durable in hvr start and hvr simulate', () => {
        expect(parseStartArgs(['--durable', 'dtfx'], {}).options.durable).toBe('dtfx');
        expect(() => parseStartArgs(['--durable', 'x'], {})).toThrow(/--durable must be one of/);
        expect(parseSimulateArgs(['--out', 'd', '--durable', 'dtfx']).durable).toBe('dtfx');
        expect(parseSimulateArgs(['--out', 'd']).durable).toBeUndefined();
        expect(() => parseSimulateArgs(['--out', 'd', '--durable', 'nope'])).toThrow(/--durable must be one of/);
    });

    it('says which prerequisite of the real engine is missing', () => {
        expect(findDtfxPrerequisites({ HVR_DOTNET: '/nonexistent/dotnet' })).toEqual({
            missing: expect.stringMatching(/^dotnet \(\/nonexistent\/dotnet\) cannot be run .*install the .NET SDK 10/),
        });
    });
});

describe('the durable time scale', () => {
    afterEach(() => {
        delete process.env.HVR_DURABLE_TIME_SCALE;
    });

    it('is 1 unless set, and scales retry delays and timers when set', () => {
        expect(durableTimeScale({})).toBe(1);
        expect(retryDelay(1)).toBe(60_000);
        process.env.HVR_DURABLE_TIME_SCALE = '0.001';
        expect(retryDelay(1)).toBe(60);
        expect(retryDelay(6)).toBe(1_800);
        expect(scaledMs(0.2)).toBe(1);
    });

    it('refuses values outside (0, 1], naming the setting', () => {
        for (const bad of ['0', '-1', '2', 'fast']) {
            expect(() => durableTimeScale({ HVR_DURABLE_TIME_SCALE: bad })).toThrow(
                `HVR_DURABLE_TIME_SCALE must be a number greater than 0 and at most 1; got "${bad}"`,
            );
        }
    });
});
