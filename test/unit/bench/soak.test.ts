import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSoakArgs, soakDiskBytes } from '../../../bench/soak/args';
import { BLOCK, blockRanges, PacedDisk } from '../../../bench/soak/pacedDisk';
import { percentile, rpoSeconds, RpoSampler, spread } from '../../../bench/soak/stats';
import { bench, diffInvocations } from '../../../bench/soak';
import { SeededRandom } from '../../../tools/simulator/random';

const MiB = 1024 * 1024;

describe('bench soak disk space', () => {
    it('counts the sources and, with Azurite on disk, every byte the guests write', () => {
        const tenMinutes = parseSoakArgs('--vms 4 --disks 2 --disk-size 256M --churn 2M --minutes 10'.split(' '));
        expect(soakDiskBytes(tenMinutes)).toBe(8 * 256 * MiB + 8 * (256 * MiB + 2 * MiB * 600));
        // The 60-minute run left 61 GiB behind: about what this asks for.
        const hour = parseSoakArgs('--minutes 60'.split(' '));
        expect(soakDiskBytes(hour) / (1024 * MiB)).toBeCloseTo(60.25, 2);
        expect(soakDiskBytes({ ...hour, azuriteInMemory: true })).toBe(8 * 256 * MiB);
    });

    it('refuses to start a run its disk cannot hold, saying what it needs and what there is', async () => {
        const out = await mkdtemp(join(tmpdir(), 'hvr-soak-space-'));
        try {
            const refused: unknown = await bench(['--out', out, '--churn', '256M', '--minutes', '1440']).catch(
                (e) => e,
            );
            expect(refused).toMatchObject({ code: 'VALIDATION_FAILED' });
            expect((refused as Error).message).toMatch(
                /needs about \d+(\.\d)? GiB free under .*, and \d+(\.\d)? GiB are/,
            );
        } finally {
            await rm(out, { recursive: true, force: true });
        }
    });
});

describe('bench soak arguments', () => {
    it("sets the policy's retention with --retention-hours (0 keeps the newest point), within the policy's bounds", () => {
        expect(parseSoakArgs([]).retentionHours).toBe(2);
        expect(parseSoakArgs(['--retention-hours', '0']).retentionHours).toBe(0);
        expect(() => parseSoakArgs(['--retention-hours', '73'])).toThrow(
            '--retention-hours needs a whole number from 0 to 72, got "73".',
        );
    });

    it('reads the issue’s command line', () => {
        const o = parseSoakArgs(
            '--vms 4 --disks 2 --disk-size 256M --churn 2M --copy-frequency 30 --minutes 10'.split(' '),
        );
        expect(o).toMatchObject({
            vms: 4,
            disks: 2,
            diskSize: 256 * MiB,
            churn: 2 * MiB,
            copyFrequency: 30,
            minutes: 10,
            azuriteInMemory: false,
            durable: 'embedded',
        });
    });

    it('has defaults, takes --flag=value, fractions of minutes and the other options', () => {
        expect(parseSoakArgs([])).toMatchObject({ vms: 4, disks: 2, diskSize: 256 * MiB, churn: 2 * MiB });
        const o = parseSoakArgs([
            '--vms=1',
            '--churn=20M',
            '--minutes',
            '0.5',
            '--copy-frequency=300',
            '--azurite-in-memory',
            '--durable',
            'dtfx',
            '--out',
            '/tmp/x',
            '--memory-file',
            '/tmp/m.json',
            '--seed',
            '7',
        ]);
        expect(o).toMatchObject({
            vms: 1,
            churn: 20 * MiB,
            minutes: 0.5,
            copyFrequency: 300,
            azuriteInMemory: true,
            durable: 'dtfx',
            out: '/tmp/x',
            memoryFile: '/tmp/m.json',
            seed: 7,
        });
    });

    it.each([
        [['--vms', '0'], /--vms needs a whole number from 1/],
        [['--vms', 'two'], /--vms needs a whole number/],
        [['--disks'], /--disks needs a value/],
        [['--disk-size', '3M'], /--disk-size must be at least 4M/],
        [['--disk-size', '5000K'], /whole MiB/],
        [['--disk-size', 'big'], /invalid size "big"/],
        [['--churn', '0'], /--churn must be more than 0/],
        [['--copy-frequency', '60'], /--copy-frequency must be one of 30, 300, 900/],
        [['--minutes', '0'], /--minutes must be a number above 0/],
        [['--minutes', '-1'], /--minutes must be/],
        [['--durable', 'other'], /--durable must be embedded or dtfx/],
        [['--cycles', '3'], /unknown option "--cycles"/],
        [['--disk-size', '4M', '--churn', '8M'], /--churn is more than the disk size/],
    ])('refuses %j', (argv, message) => {
        expect(() => parseSoakArgs(argv)).toThrow(message);
    });
});

describe('bench soak numbers', () => {
    it('percentile is nearest rank', () => {
        const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted input
        expect(percentile(values, 50)).toBe(50);
        expect(percentile(values, 99)).toBe(99);
        expect(percentile(values, 100)).toBe(100);
        expect(percentile(values, 0)).toBe(1);
        expect(percentile([7], 99)).toBe(7);
        expect(percentile([1, 2, 3], 50)).toBe(2);
        expect(percentile([], 50)).toBeUndefined();
        expect(() => percentile([1], 101)).toThrow(RangeError);
        expect(values[0]).toBe(100); // the input is not sorted in place
    });

    it('spread gives p50, p99 and max rounded to 0.1', () => {
        expect(spread([1.04, 2.06, 3.01])).toEqual({ p50: 2.1, p99: 3, max: 3 });
        expect(spread([])).toBeUndefined();
    });

    it('an RPO sample is now minus the newest point’s capture time', () => {
        const now = new Date('2026-01-01T00:01:00Z');
        expect(rpoSeconds(now, new Date('2026-01-01T00:00:15Z'))).toBe(45);
        expect(rpoSeconds(now, undefined)).toBeUndefined();
        expect(rpoSeconds(now, new Date('2026-01-01T00:01:02Z'))).toBe(0);
    });

    it('samples each VM from its first point on, the newest point winning, overall and per VM', () => {
        const sampler = new RpoSampler(['a', 'b']);
        const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
        sampler.sample(t(1)); // no points yet: no samples
        sampler.pointRecorded('a', t(0));
        sampler.sample(t(10)); // a: 10
        sampler.pointRecorded('a', t(20));
        sampler.pointRecorded('a', t(5)); // older than the newest: ignored
        sampler.pointRecorded('b', t(0));
        sampler.sample(t(30)); // a: 10, b: 30
        sampler.sample(t(40)); // a: 20, b: 40
        const report = sampler.report();
        expect(report.samples).toBe(5);
        expect(report.perVm).toEqual({ a: { p50: 10, p99: 20, max: 20 }, b: { p50: 30, p99: 40, max: 40 } });
        expect(report.all).toEqual({ p50: 20, p99: 40, max: 40 });
    });

    it('executions between two readings of the host counters', () => {
        const before = [{ name: 'm', triggerType: 'queueTrigger', count: 2, failed: 0, totalMs: 10, maxMs: 6 }];
        const after = [
            { name: 'm', triggerType: 'queueTrigger', count: 5, failed: 1, totalMs: 40, maxMs: 20 },
            { name: 'n', triggerType: 'activityTrigger', count: 1, failed: 0, totalMs: 3, maxMs: 3 },
            { name: 'o', triggerType: 'timerTrigger', count: 0, failed: 0, totalMs: 0, maxMs: 0 },
        ];
        expect(diffInvocations(before, after)).toEqual([
            { name: 'm', triggerType: 'queueTrigger', count: 3, failed: 1, totalMs: 30, maxMs: 20 },
            { name: 'n', triggerType: 'activityTrigger', count: 1, failed: 0, totalMs: 3, maxMs: 3 },
        ]);
    });
});

describe('bench soak guest disk', () => {
    let dir: string;
    beforeEach(async () => {
        dir = await mkdtemp(join(tmpdir(), 'soak-disk-'));
    });
    afterEach(async () => {
        await rm(dir, { recursive: true, force: true });
    });

    it('block ranges merge neighbours and stop at the disk’s end', () => {
        expect(blockRanges([3, 1, 2, 7], 8 * BLOCK)).toEqual([
            { offset: BLOCK, length: 3 * BLOCK },
            { offset: 7 * BLOCK, length: BLOCK },
        ]);
        expect(blockRanges([9], 8 * BLOCK)).toEqual([]);
    });

    it('a capture reads the disk as it was, while the guest keeps writing', async () => {
        const path = join(dir, 'd.raw');
        const disk = await PacedDisk.create('d', path, 4 * MiB, new SeededRandom(3));
        const written = await disk.write(256 * 1024);
        expect(written).toBeGreaterThanOrEqual(256 * 1024);
        expect(disk.writtenBytes).toBe(written);
        const atCapture = await readFile(path);
        const ranges = await disk.capture();
        expect(ranges.reduce((n, r) => n + r.length, 0)).toBeGreaterThan(0);
        await expect(disk.capture()).rejects.toThrow(/not released/);
        await disk.write(1024 * 1024); // hits many captured blocks (the hot spot)
        expect(disk.keptBlocks).toBeGreaterThan(0);
        for (const r of ranges) {
            expect(
                (await disk.read(r.offset, r.length)).equals(atCapture.subarray(r.offset, r.offset + r.length)),
            ).toBe(true);
        }
        await disk.release();
        const next = await disk.capture();
        expect(next.length).toBeGreaterThan(0);
        const now = await readFile(path);
        for (const r of next)
            expect((await disk.read(r.offset, r.length)).equals(now.subarray(r.offset, r.offset + r.length))).toBe(
                true,
            );
        await disk.close();
    });
});
