import {
    CUSTOM_STATUS_MAX_UTF16_BYTES,
    customStatusProblem,
    fitCustomStatus,
} from '../../shared/lifecycle/customStatus';
import { VirtualClock, DurableRuntime, functionRegistry } from '../../packages/functions-local/src';
import './fixtures/status';

/** The extension measures the custom status as UTF-16 in whole kilobytes; the app keeps under 8,192 code units. */
describe('custom status size, as the extension measures it', () => {
    let runtime: DurableRuntime;
    beforeEach(() => {
        runtime = new DurableRuntime({ registry: functionRegistry(), clock: new VirtualClock() });
    });
    afterEach(() => runtime.close());

    it("the embedded runtime applies the extension's rule: 8,703 UTF-16 code units pass, 8,704 fail", async () => {
        // The extension truncates the UTF-16 size to whole kilobytes before comparing with 16: 17,406 bytes
        // are "16 KB", 17,408 are "17 KB". The app's own limit stays below both (8,192 code units).
        expect(CUSTOM_STATUS_MAX_UTF16_BYTES / 2).toBe(8192);
        const fits = await runtime.startNew('fixtureStatusOfSize', { input: 8703 });
        const over = await runtime.startNew('fixtureStatusOfSize', { input: 8704 });
        await runtime.advance(2000);
        expect((await runtime.getStatus(fits))?.runtimeStatus).toBe('Completed');
        const failed = await runtime.getStatus(over);
        expect(failed?.runtimeStatus).toBe('Failed');
        expect(failed?.failure?.message).toMatch(
            /UTF-16 size of the JSON-serialized payload must not exceed 16 KB\. The current payload size is 17 KB/,
        );
    });

    it('counts non-ASCII text by UTF-16 code units, as .NET does', () => {
        expect(customStatusProblem(JSON.stringify('é'.repeat(8190)))).toBeUndefined();
        expect(customStatusProblem(JSON.stringify('😀'.repeat(4096)))).toMatch(/limit is 16384 bytes/);
    });

    it('fitCustomStatus shapes an oversized status to fit, keeping the stage and the job', () => {
        const huge = {
            stage: 'Resynchronizing',
            jobId: 'job-1',
            error: { code: 'X', message: 'm'.repeat(20_000) },
            disks: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`disk${i}`, { detail: 'd'.repeat(400) }])),
        };
        const fitted = fitCustomStatus(huge);
        expect(customStatusProblem(JSON.stringify(fitted))).toBeUndefined();
        expect(fitted).toMatchObject({ stage: 'Resynchronizing', jobId: 'job-1', truncated: true });
        const small = { stage: 'Protected', jobId: 'job-2' };
        expect(fitCustomStatus(small)).toBe(small);
        const wide = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, { v: i }]));
        const fittedWide = fitCustomStatus({ stage: 'S', ...wide });
        expect(customStatusProblem(JSON.stringify(fittedWide))).toBeUndefined();
        expect(fittedWide).toEqual({ stage: 'S', truncated: true });
    });
});
