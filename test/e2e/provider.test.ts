import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connectionFromString } from '../../shared/storage/connections';
import { runFolderProvider } from '../../tools/folderProvider/folderSite';
import { verifyRecoveryPoints } from '../../tools/folderProvider/verifyPoints';
import { LocalHost, startLocalHost } from '../../tools/platform';
import { ManagementClient } from '../../tools/simulator/managementClient';
import { SeededRandom } from '../../tools/simulator/random';

const ROOT = resolve(__dirname, '..', '..');
const MiB = 1024 * 1024;
const CYCLES = 10;

function appModules(): string[] {
    return ['functions', 'orchestrations'].flatMap((dir) =>
        readdirSync(join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => join(ROOT, dir, f)),
    );
}

/**
 * A guest for each image: writes of any size at any byte offset, in a loop, until stopped. Each barrier pauses
 * it (the quiesce hook), and while it is paused the test copies the images itself: what that cycle's recovery
 * point must equal, taken independently of the provider's own barrier copy.
 */
class Guests {
    private paused = 0;
    private running = true;
    private busy: Promise<void> = Promise.resolve();
    private loop?: Promise<void>;
    readonly barriers = new Map<string, number>();

    constructor(
        private readonly images: Record<string, { diskId: string; path: string }[]>,
        private readonly expectedDir: string,
        private readonly random: SeededRandom,
    ) {}

    start(): void {
        this.loop = (async () => {
            while (this.running) {
                if (this.paused === 0) {
                    let release!: () => void;
                    this.busy = new Promise((r) => (release = r));
                    try {
                        for (const paths of Object.values(this.images)) {
                            for (const { path } of paths) await this.write(path);
                        }
                    } finally {
                        release();
                    }
                }
                await new Promise((r) => setTimeout(r, 50));
            }
        })();
    }

    private async write(path: string): Promise<void> {
        const h = await open(path, 'r+');
        try {
            const size = (await h.stat()).size;
            const length = this.random.int(1, 16 * 1024);
            const offset = this.random.int(0, size - length);
            await h.write(this.random.fill(Buffer.alloc(length)), 0, length, offset);
        } finally {
            await h.close();
        }
    }

    /** The provider's quiesce hook: pause, copy the VM's images as they are, resume after the barrier. */
    quiesce = async (vmId: string): Promise<() => Promise<void>> => {
        this.paused++;
        await this.busy;
        const n = this.barriers.get(vmId) ?? 0;
        this.barriers.set(vmId, n + 1);
        const dir = join(this.expectedDir, vmId, n === 0 ? 'initial' : `cycle-${n}`);
        mkdirSync(dir, { recursive: true });
        for (const { diskId, path } of this.images[vmId]!) copyFileSync(path, join(dir, `${diskId}.raw`));
        return async () => {
            this.paused--;
        };
    };

    async stop(): Promise<void> {
        this.running = false;
        await this.loop;
    }
}

function makeImage(path: string, size: number, random: SeededRandom): void {
    const data = Buffer.alloc(size);
    // Some data, some holes: initial replication ships only the blocks that hold data.
    for (let at = 0; at < size; at += 256 * 1024)
        if (random.int(0, 1) === 0) random.fill(data.subarray(at, at + 64 * 1024));
    writeFileSync(path, data);
}

describe('hvr provider end to end (local host)', () => {
    let dir: string;
    let host: LocalHost | undefined;
    const hostLog: string[] = [];

    beforeAll(async () => {
        host = await startLocalHost({
            appRoot: ROOT,
            modules: appModules(),
            port: 0,
            settings: { PROVIDER_BUS: '', FAILOVER_INFRASTRUCTURE: 'dryrun' },
            blobScanIntervalMs: 200,
            serviceBus: { pollIntervalMs: 100, receiveWaitMs: 500, siteScanIntervalMs: 250 },
            log: (line) => hostLog.push(line),
        });
    });
    afterAll(async () => {
        await host?.stop();
    });
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'hvr-provider-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it(`protects a folder of images for ${CYCLES} cycles; each recovery point equals the images at its barrier`, async () => {
        const images = join(dir, 'images');
        mkdirSync(join(images, 'vm-a'), { recursive: true });
        const random = new SeededRandom(15);
        makeImage(join(images, 'vm-a', 'os.raw'), 4 * MiB, random.fork('os'));
        makeImage(join(images, 'vm-a', 'data.raw'), 2 * MiB + 512, random.fork('data'));
        makeImage(join(images, 'web.raw'), 2 * MiB, random.fork('web'));
        const guests = new Guests(
            {
                'vm-a': [
                    { diskId: 'data', path: join(images, 'vm-a', 'data.raw') },
                    { diskId: 'os', path: join(images, 'vm-a', 'os.raw') },
                ],
                web: [{ diskId: 'os', path: join(images, 'web.raw') }],
            },
            join(dir, 'expected'),
            random.fork('guests'),
        );
        guests.start();
        const lines: string[] = [];
        let result;
        try {
            result = await runFolderProvider({
                folder: images,
                apiUrl: host!.apiUrl,
                functionKey: host!.functionKey,
                busConnectionString: host!.settings.PROVIDER_BUS!,
                siteId: 'folder-site',
                copyFrequencySeconds: 30,
                intervalSeconds: 3,
                cycles: CYCLES,
                stateDir: join(dir, 'state'),
                keepBarriers: true,
                quiesce: guests.quiesce,
                stepTimeoutMs: 90_000,
                log: (line) => lines.push(line),
            });
        } catch (err) {
            console.error([...lines, ...hostLog.slice(-40)].join('\n'));
            throw err;
        } finally {
            await guests.stop();
        }
        expect(result.vms.map((vm) => [vm.vmId, vm.disks])).toEqual([
            ['vm-a', ['data', 'os']],
            ['web', ['os']],
        ]);
        for (const vm of result.vms) expect(vm.cycles.map((c) => c.cycleId)).toHaveLength(CYCLES);

        const api = new ManagementClient(host!.apiUrl, host!.functionKey);
        const blob = connectionFromString(host!.storageConnectionString).blob;
        const cycles = ['initial', ...Array.from({ length: CYCLES }, (_, i) => `cycle-${i + 1}`)];
        for (const vm of result.vms) {
            // The last cycle becomes a point once the merge has applied it on every disk.
            const until = Date.now() + 60_000;
            while (!(await api.recoveryPoints(vm.vmId)).some((p) => p.properties.cycleId === `cycle-${CYCLES}`)) {
                if (Date.now() > until) throw new Error(`${vm.vmId}: no point for cycle-${CYCLES}`);
                await new Promise((r) => setTimeout(r, 500));
            }
            expect((await api.protectedItem(vm.vmId)).properties.protectionState).toBe('Protected');
            // Against the test's own copies (taken while the guests were paused) ...
            const checks = await verifyRecoveryPoints(
                api,
                blob,
                join(dir, 'expected'),
                vm.vmId,
                vm.disks,
                cycles,
                join(dir, 'verify'),
            );
            const unequal = checks.filter((c) => !c.equal);
            // A missing snapshot or a differing disk: what the host did to this VM's points says why.
            if (unequal.length > 0) console.error(hostLog.filter((l) => l.includes(vm.vmId)).join('\n'));
            expect(unequal).toEqual([]);
            expect(checks).toHaveLength(cycles.length * vm.disks.length);
            // ... and the provider's kept barrier copies are those same images.
            for (const cycleId of cycles) {
                for (const diskId of vm.disks) {
                    const kept = readFileSync(join(dir, 'state', 'barriers', vm.vmId, cycleId, `${diskId}.raw`));
                    const own = readFileSync(join(dir, 'expected', vm.vmId, cycleId, `${diskId}.raw`));
                    expect(kept.equals(own)).toBe(true);
                }
            }
        }
        // Every cycle shipped changes (the guests kept writing) and the images moved on from the first point.
        expect(result.vms.every((vm) => vm.cycles.every((c) => c.changedBytes > 0))).toBe(true);
    }, 900_000);
});
