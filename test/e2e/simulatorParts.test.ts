import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeVhdFooter } from '../../shared/vhd/footer';
import { parseSimulateArgs, pipelineFromEnv } from '../../tools/simulate';
import { SeededRandom } from '../../tools/simulator/random';
import { compareReplica } from '../../tools/simulator/replicaCheck';
import { DiskWorkload, MAX_WRITE, SECTOR } from '../../tools/simulator/workload';

const MIB = 1024 * 1024;

describe('hvr simulate arguments', () => {
    it('has small defaults and parses sizes with suffixes', () => {
        expect(parseSimulateArgs(['--out', '/tmp/x'])).toMatchObject({
            vms: 2,
            disks: 2,
            diskSize: 16 * MIB,
            cycles: 5,
            churn: MIB,
            seed: 1,
            json: false,
        });
        const o = parseSimulateArgs(['--out', 'd', '--disk-size', '8M', '--churn', '64K', '--faults', 'drop,reorder']);
        expect(o.diskSize).toBe(8 * MIB);
        expect(o.churn).toBe(64 * 1024);
        expect([...o.faults].sort()).toEqual(['drop', 'reorder']);
    });

    it.each([
        [[], /--out DIR is required/],
        [['--out', 'd', '--faults', 'drop,explode'], /unknown fault "explode"/],
        [['--out', 'd', '--disk-size', '1M'], /at least 4M/],
        [['--out', 'd', '--disk-size', '5000001'], /multiple of 512/],
        [['--out', 'd', '--churn', 'lots'], /invalid size "lots"/],
        [['--out', 'd', '--vms', '0'], /--vms must be a whole number from 1/],
        [['--out', 'd', 'extra'], /unexpected argument "extra"/],
    ])('refuses %j', (argv, message) => {
        expect(() => parseSimulateArgs(argv)).toThrow(message);
    });

    it('takes an external pipeline only when all four variables are set', () => {
        expect(pipelineFromEnv({})).toBeUndefined();
        expect(() => pipelineFromEnv({ HVR_API_URL: 'http://h/api' })).toThrow(/HVR_FUNCTION_KEY/);
        const three = { HVR_API_URL: 'u', HVR_FUNCTION_KEY: 'k', AZURE_STORAGE_CONNECTION_STRING: 'c' };
        expect(() => pipelineFromEnv(three)).toThrow(/HVR_PROVIDER_BUS/);
        expect(pipelineFromEnv({ ...three, HVR_PROVIDER_BUS: 'b' })).toEqual({
            apiUrl: 'u',
            functionKey: 'k',
            storageConnectionString: 'c',
            providerBusConnectionString: 'b',
        });
    });
});

describe('the seeded workload', () => {
    const cycles = (seed: number) => {
        const w = new DiskWorkload(new SeededRandom(seed), 16 * MIB);
        return [w.cycle(MIB), w.cycle(MIB), w.cycle(MIB)];
    };

    it('is the same for the same seed and differs for another', () => {
        expect(cycles(5)).toEqual(cycles(5));
        expect(cycles(5)).not.toEqual(cycles(6));
    });

    it('issues sector-aligned writes of 512 B to 1 MiB inside the disk, zero runs and overwrites included', () => {
        const writes = cycles(11).flat();
        for (const w of writes) {
            expect(w.offset % SECTOR).toBe(0);
            expect(w.length % SECTOR).toBe(0);
            expect(w.length).toBeGreaterThanOrEqual(SECTOR);
            expect(w.length).toBeLessThanOrEqual(MAX_WRITE);
            expect(w.offset + w.length).toBeLessThanOrEqual(16 * MIB);
        }
        expect(writes.some((w) => w.zero)).toBe(true);
        const overlaps = writes.some((a, i) =>
            writes.some((b, j) => j > i && a.offset < b.offset + b.length && b.offset < a.offset + a.length),
        );
        expect(overlaps).toBe(true);
    });
});

describe('compareReplica', () => {
    let dir: string;
    const size = 4 * MIB + 512 * 3; // not a whole MiB: the replica's virtual size rounds up
    const virtualSize = 5 * MIB;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'hvr-cmp-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    function files(mutate: (vhd: Buffer) => void = () => undefined): { raw: string; vhd: string } {
        const raw = new SeededRandom(1).fill(Buffer.alloc(size));
        const vhd = Buffer.concat([raw, Buffer.alloc(virtualSize - size), encodeVhdFooter({ virtualSize })]);
        mutate(vhd);
        writeFileSync(join(dir, 'd.raw'), raw);
        writeFileSync(join(dir, 'd.vhd'), vhd);
        return { raw: join(dir, 'd.raw'), vhd: join(dir, 'd.vhd') };
    }

    it('accepts the raw disk followed by zeros up to the virtual size and a valid footer', async () => {
        const f = files();
        expect(await compareReplica(f.raw, f.vhd)).toEqual({ equal: true });
    });

    it('names the first differing byte', async () => {
        const f = files((vhd) => (vhd[3 * MIB + 7] = vhd[3 * MIB + 7]! ^ 1));
        expect(await compareReplica(f.raw, f.vhd)).toEqual({
            equal: false,
            problem: `first difference at byte ${3 * MIB + 7}`,
        });
    });

    it('finds data past the source in the padding', async () => {
        const f = files((vhd) => (vhd[size + 100] = 1));
        expect((await compareReplica(f.raw, f.vhd)).problem).toBe(`first difference at byte ${size + 100}`);
    });

    it('refuses a damaged footer', async () => {
        const f = files((vhd) => (vhd[virtualSize + 70] = vhd[virtualSize + 70]! ^ 0xff));
        const result = await compareReplica(f.raw, f.vhd);
        expect(result.equal).toBe(false);
        expect(result.problem).toMatch(/^footer: /);
    });

    it('refuses a replica of the wrong length', async () => {
        const f = files();
        writeFileSync(f.vhd, Buffer.alloc(virtualSize));
        expect((await compareReplica(f.raw, f.vhd)).problem).toMatch(/expected 5243392/);
    });
});
