import {
    connectionFromString,
    DurableRuntime,
    functionRegistry,
    installFunctionsCore,
    openPersistentState,
    startAzurite,
    type InstanceStore,
} from '../packages/functions-local/src';

/**
 * `npm run bench -- durableState`: what keeping the embedded runtime's instances in storage costs. The same
 * orchestrations (a chain of ACTIVITIES trivial activities each, RUNS of them, INSTANCES at a time) run on the
 * real clock over the in-memory store (the baseline) and over blobs in Azurite with the task hub's lease (what
 * `hvr start` uses), in the same process against the same Azurite. Reports wall time per episode for both and
 * the added latency per episode (each episode end and each delivered result is one conditional blob write).
 */
const ACTIVITIES = 10;
const RUNS = 8;
const INSTANCES = 4;

let registered = false;
function register(): void {
    if (registered) return;
    registered = true;
    installFunctionsCore();
    // Loaded after the registry is installed: durable-functions registers through @azure/functions-core.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const df = require('durable-functions') as typeof import('durable-functions');
    const step = df.app.activity('benchDurableStep', { handler: (n: number) => n + 1 });
    df.app.orchestration('benchDurableChain', function* () {
        let n = 0;
        for (let i = 0; i < ACTIVITIES; i++) n = (yield step(n)) as number;
        return n;
    });
}

async function timeRuns(store: InstanceStore | undefined, tag: string): Promise<{ ms: number; episodes: number }> {
    const runtime = new DurableRuntime({ registry: functionRegistry(), ...(store ? { store } : {}) });
    const started = process.hrtime.bigint();
    for (let run = 0; run < RUNS; run++) {
        const ids = await Promise.all(
            Array.from({ length: INSTANCES }, (_, i) =>
                runtime.startNew('benchDurableChain', { instanceId: `${tag}-${run}-${i}` }),
            ),
        );
        for (const id of ids) {
            const status = await runtime.waitForStatus(id, (s) => s.runtimeStatus === 'Completed', {
                timeoutMs: 120_000,
            });
            if (status.output !== ACTIVITIES) throw new Error(`${id} returned ${JSON.stringify(status.output)}`);
        }
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    await runtime.close();
    // One episode per activity result plus the first.
    return { ms, episodes: RUNS * INSTANCES * (ACTIVITIES + 1) };
}

export async function bench(): Promise<Record<string, unknown>> {
    register();
    const azurite = await startAzurite();
    try {
        const blob = connectionFromString(azurite.connectionString).blob;
        // Warm-up (module loading, first connections), not counted.
        await timeRuns(undefined, 'warm');
        const warm = await openPersistentState(blob, 'BenchWarm');
        await timeRuns(warm.store, 'warm');
        await warm.lease.release();

        process.stderr.write(`durableState: ${RUNS} × ${INSTANCES} chains of ${ACTIVITIES} activities\n`);
        const memory = await timeRuns(undefined, 'memory');
        const state = await openPersistentState(blob, 'BenchDurable');
        const storage = await timeRuns(state.store, 'storage');
        await state.lease.release();
        const perEpisode = (r: { ms: number; episodes: number }) => Number((r.ms / r.episodes).toFixed(3));
        return {
            bench: 'durableState',
            episodes: memory.episodes,
            memoryMs: Math.round(memory.ms),
            storageMs: Math.round(storage.ms),
            memoryMsPerEpisode: perEpisode(memory),
            storageMsPerEpisode: perEpisode(storage),
            addedMsPerEpisode: Number((perEpisode(storage) - perEpisode(memory)).toFixed(3)),
            ratio: Number((storage.ms / memory.ms).toFixed(2)),
        };
    } finally {
        await azurite.stop();
    }
}
