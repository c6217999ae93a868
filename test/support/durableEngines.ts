import { randomBytes } from 'node:crypto';
import {
    realClock,
    VirtualClock,
    type Clock,
    DtfxEngine,
    findDtfxPrerequisites,
    type DtfxPrerequisites,
    DURABLE_ENGINES,
    parseDurableEngine,
    type DurableEngineName,
    DurableRuntime,
    type DurableClientSource,
    functionRegistry,
    eventTypeName,
} from '../../packages/functions-local/src';

/**
 * Which engines the orchestration tests run on: HVR_TEST_DURABLE = embedded | dtfx | both (default both).
 * Where dotnet or the built host is missing the dtfx runs are skipped with the reason printed, unless
 * HVR_TEST_DTFX_REQUIRED=1 (CI), which makes that a failure.
 */
export const TEST_ENGINES_SETTING = 'HVR_TEST_DURABLE';
export const DTFX_REQUIRED_SETTING = 'HVR_TEST_DTFX_REQUIRED';

/** An instance's status, the same shape from either engine. */
export interface EngineStatus {
    runtimeStatus: string;
    input: unknown;
    output: unknown;
    customStatus: unknown;
}

/** The operations the engine-neutral tests use; time is virtual on `embedded` and real on `dtfx`. */
export interface EngineUnderTest extends DurableClientSource {
    readonly name: DurableEngineName;
    /**
     * The engine's time: the virtual clock on `embedded` (it moves only in `waitFor`/`progress`), the wall clock on
     * `dtfx`. Give it to the app's ports so activities and orchestrations agree on "now".
     */
    readonly clock: Clock;
    startNew(orchestration: string, options: { instanceId: string; input?: unknown }): Promise<string>;
    raiseEvent(instanceId: string, eventName: string, data?: unknown): Promise<void>;
    status(instanceId: string): Promise<EngineStatus | undefined>;
    /**
     * Lets the engine run what it can without moving virtual time (embedded: runs until idle; dtfx runs by
     * itself). Not awaited by a test that holds an activity at a gate.
     */
    progress(): Promise<void>;
    /** Until `done` holds: advancing virtual time (embedded) or polling in wall time (dtfx). */
    waitFor(instanceId: string, done: (s: EngineStatus) => boolean, timeoutMs?: number): Promise<EngineStatus>;
    terminate(instanceId: string, reason: string): Promise<void>;
    purge(instanceId: string): Promise<void>;
    /**
     * The event types of the instance's current execution history, in order, by name (`TimerCreated`, ...):
     * the embedded runtime's history, or the extension's (the durable client's status with `showHistory`).
     */
    historyEventTypes(instanceId: string): Promise<string[]>;
    /** The real engine itself, when that is the engine. */
    readonly dtfx?: DtfxEngine;
    /** The embedded runtime itself (its virtual clock, histories), when that is the engine: for `itOn('embedded')`. */
    readonly embedded?: DurableRuntime;
    close(): Promise<void>;
}

/**
 * The tests that run on one engine only, by full name, with the reason; docs/durable-runtime.md lists the same
 * (checked by test/orchestrations/engines/oneEngineList.test.ts). Use `itOn(engine, name, fn)` for them.
 */
export const ONE_ENGINE_TESTS: Readonly<Record<string, { engine: DurableEngineName; reason: string }>> = {
    'engine rules [dtfx] events in the same batch as continueAsNew come back in every new generation': {
        engine: 'dtfx',
        reason:
            'the embedded runtime drops the unread events of the batch on continueAsNew; on the real engine ' +
            'they are replayed into every following generation (a loop), which no embedded mode reproduces',
    },
    'engine rules [embedded] events in the same batch as continueAsNew: the unread ones are dropped': {
        engine: 'embedded',
        reason: 'the same scenario as above: the embedded runtime drops the unread events of the batch, the real engine replays them (see the dtfx test)',
    },
    "engine rules [dtfx] a timer left out of a later Task.any's action fires but never ends it": {
        engine: 'dtfx',
        reason:
            "the extension's shim awaits each yielded action as .NET tasks, so a Task.any whose action lacks the " +
            'timer cannot end when the timer fires; the embedded runtime resolves the JavaScript tasks only (see the embedded test)',
    },
    "engine rules [embedded] a timer left out of a later Task.any's action ends it when it fires": {
        engine: 'embedded',
        reason: 'the same scenario as above: the embedded runtime ends the race, the real engine never does (see the dtfx test)',
    },
    'replication monitor [embedded] walks RPO over 70 minutes: Normal to 15 min, Warning from 20, Critical from 65': {
        engine: 'embedded',
        reason:
            'names the health at exact instants 5 virtual minutes apart over 70 minutes; on both engines the ' +
            'monitor reaches Critical on its own timer from a capture 60 min minus 20 s old',
    },
    'enable protection [embedded] retries a recoverable failure after 1, 2, 4, 8, 10, 30 and 30 minutes (scaled)': {
        engine: 'embedded',
        reason:
            'the whole retry schedule against its give-up limit, both scaled: at the scale that keeps the 72 h ' +
            'initial-replication timeout short on the real engine (0.0001), the 24 h limit is 8.6 s, less than ' +
            "eight attempts' real overhead on a loaded machine; on both engines a thrown error is retried after the scaled 1 and 2 minutes",
    },
    "enable protection [embedded] waits for the policy's scheduled initial replication start with a durable timer": {
        engine: 'embedded',
        reason:
            'the start is an absolute instant, which the scale does not shorten: on the real engine a loaded ' +
            'machine can pass any fixed lead before the orchestration reaches its timer',
    },
    'replication monitor [embedded] keeps its history bounded with continueAsNew over 400 replication cycles (20 generations)':
        {
            engine: 'embedded',
            reason:
                "reads the embedded runtime's history length over 400 cycles; on both engines 25 events sent back " +
                'to back all land and the monitor continues as new',
        },
};

const FINISHED = new Set(['Completed', 'Failed', 'Terminated']);
export const isFinished = (s: EngineStatus): boolean => FINISHED.has(s.runtimeStatus);

let prerequisites: DtfxPrerequisites | { missing: string } | undefined;

/** The engines this run covers, each with the reason it is skipped (if it is). */
export function enginesUnderTest(env: NodeJS.ProcessEnv = process.env): { name: DurableEngineName; skip?: string }[] {
    const asked = env[TEST_ENGINES_SETTING] ?? 'both';
    const names: readonly DurableEngineName[] =
        asked.trim().toLowerCase() === 'both' ? DURABLE_ENGINES : [parseDurableEngine(asked, TEST_ENGINES_SETTING)];
    return names.map((name) => {
        if (name !== 'dtfx') return { name };
        prerequisites ??= findDtfxPrerequisites(env);
        if (!('missing' in prerequisites)) return { name };
        if (env[DTFX_REQUIRED_SETTING] === '1') {
            throw new Error(`${DTFX_REQUIRED_SETTING}=1 but the real engine cannot run: ${prerequisites.missing}`);
        }
        return { name, skip: prerequisites.missing };
    });
}

/**
 * `describe` once per engine under test; a skipped engine's block is skipped with its reason printed.
 * `body` gets a getter for the engine the block's beforeAll started (one per file and engine).
 */
export function describeOnEngines(
    title: string,
    body: (engine: () => EngineUnderTest, name: DurableEngineName) => void,
): void {
    for (const { name, skip } of enginesUnderTest()) {
        if (skip) {
            console.log(`${title} [${name}]: skipped: ${skip}`);
            describe.skip(`${title} [${name}]`, () => body(() => undefined as never, name));
            continue;
        }
        describe(`${title} [${name}]`, () => {
            let engine: EngineUnderTest | undefined;
            beforeAll(async () => {
                engine = await startEngineUnderTest(name);
            }, 120_000);
            afterAll(async () => {
                await engine?.close();
            });
            body(() => {
                if (!engine) throw new Error(`the ${name} engine did not start`);
                return engine;
            }, name);
        });
    }
}

/** Orchestration test files that run on the embedded engine only (docs/durable-runtime.md says why). */
export const EMBEDDED_ONLY_TEST_FILES: readonly string[] = [
    'test/orchestrations/customStatus.test.ts',
    'test/orchestrations/lifecycleStarts.test.ts',
    'test/orchestrations/recoveryPlan.test.ts',
    'test/orchestrations/replicationMonitor.idle.test.ts',
    'test/orchestrations/resyncScheduler.test.ts',
    'test/orchestrations/runtime.batches.test.ts',
    'test/orchestrations/runtime.client.test.ts',
    'test/orchestrations/runtime.events.test.ts',
    'test/orchestrations/runtime.failures.test.ts',
    'test/orchestrations/runtime.persistence.test.ts',
    'test/orchestrations/runtime.test.ts',
];

/**
 * `it` on one engine only: registered in the block of that engine, nowhere else. The test must be listed in
 * ONE_ENGINE_TESTS under its full name.
 */
export function itOn(
    engineName: DurableEngineName,
    blockEngine: DurableEngineName,
    title: string,
    fn: () => Promise<void>,
    timeoutMs?: number,
): void {
    if (blockEngine !== engineName) return;
    it(
        title,
        async () => {
            const name = expect.getState().currentTestName ?? title;
            if (ONE_ENGINE_TESTS[name]?.engine !== engineName) {
                throw new Error(`"${name}" runs on ${engineName} only: list it in ONE_ENGINE_TESTS with the reason`);
            }
            await fn();
        },
        timeoutMs,
    );
}

/** A fresh task hub name (Azure Storage: letters and digits). */
export function uniqueTaskHub(prefix = 'test'): string {
    return `${prefix}${randomBytes(5).toString('hex')}`;
}

export async function startEngineUnderTest(name: DurableEngineName): Promise<EngineUnderTest> {
    if (name === 'embedded') return embeddedEngine();
    const storage = process.env.AZURITE_CONNECTION_STRING;
    if (!storage) throw new Error('AZURITE_CONNECTION_STRING is not set: run through jest');
    const lines: string[] = [];
    const dtfx = await DtfxEngine.start({
        registry: functionRegistry(),
        storageConnectionString: storage,
        taskHub: uniqueTaskHub(),
        maxQueuePollingIntervalMs: 500,
        log: (line) => {
            lines.push(line);
            if (lines.length > 200) lines.shift();
        },
    });
    return dtfxEngine(dtfx, lines);
}

function embeddedEngine(): EngineUnderTest {
    const clock = new VirtualClock(new Date('2025-03-01T10:00:00.000Z'));
    const runtime = new DurableRuntime({ registry: functionRegistry(), clock });
    const status = async (instanceId: string): Promise<EngineStatus | undefined> => {
        const s = await runtime.getStatus(instanceId);
        return s && { runtimeStatus: s.runtimeStatus, input: s.input, output: s.output, customStatus: s.customStatus };
    };
    return {
        name: 'embedded',
        clock,
        clientBinding: () => runtime.clientBinding(),
        startNew: (orchestration, options) => runtime.startNew(orchestration, options),
        raiseEvent: (instanceId, eventName, data) => runtime.raiseEvent(instanceId, eventName, data),
        status,
        // Due timers too (one set for the current instant): advance(0) fires them without moving time.
        progress: () => runtime.advance(0),
        waitFor: async (instanceId, done, timeoutMs = 7 * 24 * 3600_000) => {
            await runtime.runUntilIdle();
            const s = await runtime.waitForStatus(
                instanceId,
                (raw) =>
                    done({
                        runtimeStatus: raw.runtimeStatus,
                        input: raw.input,
                        output: raw.output,
                        customStatus: raw.customStatus,
                    }),
                { timeoutMs },
            );
            return { runtimeStatus: s.runtimeStatus, input: s.input, output: s.output, customStatus: s.customStatus };
        },
        terminate: async (instanceId, reason) => {
            await runtime.terminate(instanceId, reason);
            await runtime.runUntilIdle();
        },
        purge: (instanceId) => runtime.purge(instanceId),
        historyEventTypes: async (instanceId) =>
            (await runtime.getHistory(instanceId)).map((e) => eventTypeName(e.EventType)),
        embedded: runtime,
        close: () => runtime.close(),
    };
}

function dtfxEngine(dtfx: DtfxEngine, lines: string[]): EngineUnderTest {
    const status = async (instanceId: string): Promise<EngineStatus | undefined> => {
        const s = await dtfx.getStatus(instanceId);
        return (
            s && {
                runtimeStatus: String(s.runtimeStatus),
                input: s.input,
                output: s.output,
                customStatus: s.customStatus,
            }
        );
    };
    return {
        name: 'dtfx',
        clock: realClock,
        clientBinding: () => dtfx.clientBinding(),
        startNew: (orchestration, options) => dtfx.startNew(orchestration, options),
        raiseEvent: (instanceId, eventName, data) => dtfx.raiseEvent(instanceId, eventName, data),
        status,
        progress: () => Promise.resolve(),
        waitFor: async (instanceId, done, timeoutMs = 120_000) => {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
                const s = await status(instanceId);
                if (s && done(s)) return s;
                if (Date.now() > deadline) {
                    throw new Error(
                        `${instanceId} did not reach the awaited status in ${timeoutMs} ms on dtfx ` +
                            `(last: ${JSON.stringify(s)}); the host's last lines:\n${lines.slice(-30).join('\n')}`,
                    );
                }
                await new Promise((resolve) => setTimeout(resolve, 100));
            }
        },
        terminate: (instanceId, reason) => dtfx.terminate(instanceId, reason),
        dtfx,
        purge: async (instanceId) => {
            await dtfx.purge(instanceId);
        },
        historyEventTypes: async (instanceId) => {
            // durable-functions' getStatus drops the history (it reads `history`, the extension answers
            // `historyEvents`): ask the extension's endpoint that the client uses.
            const { rpcBaseUrl } = (await dtfx.clientBinding()) as { rpcBaseUrl: string };
            const url = new URL(`instances/${encodeURIComponent(instanceId)}?showHistory=true`, rpcBaseUrl);
            const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
            if (!response.ok) throw new Error(`GET ${url.href} answered ${response.status}: ${await response.text()}`);
            const body = (await response.json()) as { historyEvents?: { EventType?: unknown }[] };
            // The extension names the type; a number would be the Durable Task Framework's numbering.
            return (body.historyEvents ?? []).map((e) =>
                typeof e.EventType === 'number' ? eventTypeName(e.EventType) : String(e.EventType),
            );
        },
        close: () => dtfx.close(),
    };
}
