import { HvrError } from '../errors';
import { ByteSource } from '../hrl/source';
import { ReplicaPageWriter } from './pageWriter';
import { assemblePut, PageWrite, planReadGroups, ReadGroup } from './writePlan';

export interface ApplyOptions {
    /** Page writes in flight (default 8). */
    concurrency?: number;
    /** Read groups (≈ 8–12 MiB each) held at once; bounds memory (default concurrency / 4 + 1: enough read-ahead to keep the writes busy). */
    groupsInFlight?: number;
    /** Bytes a read group gathers before it is read (default 8 MiB: the smallest ranged read of a sequential log). */
    readBytes?: number;
    signal?: AbortSignal;
    /** Called after each successful page call; tests use it to stop a merge part-way. */
    afterWrite?: (writesDone: number) => void | Promise<void>;
    /** Skip the plan's first steps: an earlier invocation wrote them (under the same sequence-number guard). */
    fromStep?: number;
    /** Asked before each new step; true stops issuing steps (those in flight finish) and returns how far it got. */
    budgetExhausted?: () => boolean;
    /** Sees every Put Page's data and every cleared length as they are written (the churn signal samples it). */
    observer?: WriteObserver;
}

export interface WriteObserver {
    observe(data: Uint8Array): void;
    cleared(bytes: number): void;
}

/** How far an apply got: every step below `stepsDone` is written; `complete` when that is the whole plan. */
export interface ApplyProgress {
    stepsDone: number;
    steps: number;
    complete: boolean;
}

/** Clear Pages calls per step: clears are cheap, so many go in one step. */
const CLEARS_PER_STEP = 64;

/**
 * The plan of a log in steps, in a fixed order (clears first, then read groups in log order): the unit of work a
 * time budget counts and the progress the disk row records. Deterministic for the same writes and read size.
 */
export type ApplyStep = { kind: 'clears'; writes: PageWrite[] } | { kind: 'group'; group: ReadGroup };

export function planApplySteps(writes: readonly PageWrite[], readBytes?: number): ApplyStep[] {
    const steps: ApplyStep[] = [];
    const clears = writes.filter((w) => w.kind === 'clear');
    for (let i = 0; i < clears.length; i += CLEARS_PER_STEP) {
        steps.push({ kind: 'clears', writes: clears.slice(i, i + CLEARS_PER_STEP) });
    }
    for (const group of planReadGroups(writes, { targetBytes: readBytes })) steps.push({ kind: 'group', group });
    return steps;
}

/** The key under which progress is recorded: a different read size gives other steps, so progress would not carry. */
export function applyPlanKey(readBytes: number): string {
    return `steps/v1/c${CLEARS_PER_STEP}/r${readBytes}`;
}

const ZERO = Buffer.alloc(4 * 1024 * 1024);

function isAllZero(data: Buffer): boolean {
    for (let at = 0; at < data.length; at += ZERO.length) {
        const n = Math.min(ZERO.length, data.length - at);
        if (!data.subarray(at, at + n).equals(ZERO.subarray(0, n))) return false;
    }
    return true;
}

/** A counting semaphore: at most `limit` holders at a time, woken in arrival order. */
class Slots {
    private used = 0;
    private readonly queue: (() => void)[] = [];
    constructor(private readonly limit: number) {}
    async take(): Promise<void> {
        if (this.used < this.limit) {
            this.used++;
            return;
        }
        await new Promise<void>((resolve) => this.queue.push(resolve));
    }
    give(): void {
        const next = this.queue.shift();
        if (next) next();
        else this.used--;
    }
}

/**
 * Writes a planned log into the replica step by step: Clear Pages for ranges known to be zero, then the Put
 * Pages, read group by group in log order with large ranged reads that overlap the writes. Memory is bounded
 * by `groupsInFlight` groups whatever the log size. A Put Page whose data turns out to be all zero is sent as
 * Clear Pages instead (the blob stays sparse). Steps before `fromStep` are skipped; when the budget runs out no
 * new step starts and the progress says how far it got. The first failure stops everything and is thrown.
 */
export async function applyPlannedWrites(
    log: ByteSource,
    steps: readonly ApplyStep[],
    writer: ReplicaPageWriter,
    options: ApplyOptions = {},
): Promise<ApplyProgress> {
    const concurrency = Math.max(1, options.concurrency ?? 8);
    const groupsInFlight = Math.max(1, options.groupsInFlight ?? Math.ceil(concurrency / 4) + 1);
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const writeSlots = new Slots(concurrency);
    const stepSlots = new Slots(groupsInFlight);
    let firstError: unknown;
    let writesDone = 0;
    const fail = (err: unknown): void => {
        if (firstError === undefined) firstError = err;
        stop.abort(err);
    };
    const stopped = (): boolean => signal.aborted;

    const write = async (call: () => Promise<void>): Promise<void> => {
        await writeSlots.take();
        try {
            if (stopped()) return;
            await call();
            writesDone++;
            await options.afterWrite?.(writesDone);
        } catch (err) {
            fail(err);
        } finally {
            writeSlots.give();
        }
    };

    const runStep = async (step: ApplyStep): Promise<void> => {
        try {
            if (step.kind === 'clears') {
                await Promise.all(
                    step.writes.map((w) => write(() => writer.clearPages(w.diskOffset, w.length, signal))),
                );
                for (const w of step.writes) options.observer?.cleared(w.length);
                return;
            }
            const group = step.group;
            const buffers = await Promise.all(group.reads.map((r) => readExactly(log, r.logOffset, r.length, signal)));
            await Promise.all(
                group.writes.map((w) =>
                    write(() => {
                        const data = assemblePut(w, group.reads, buffers);
                        options.observer?.observe(data);
                        return isAllZero(data)
                            ? writer.clearPages(w.diskOffset, w.length, signal)
                            : writer.putPages(w.diskOffset, data, signal);
                    }),
                ),
            );
        } catch (err) {
            fail(err);
        } finally {
            stepSlots.give();
        }
    };

    const pending: Promise<void>[] = [];
    let next = Math.min(Math.max(0, options.fromStep ?? 0), steps.length);
    while (next < steps.length) {
        if (next > (options.fromStep ?? 0) && options.budgetExhausted?.()) break;
        await stepSlots.take();
        if (stopped()) {
            stepSlots.give();
            break;
        }
        pending.push(runStep(steps[next]!));
        next++;
    }
    await Promise.all(pending);
    // The first failure is rethrown as it came (an HvrError, a RestError), so callers can classify it.
    // eslint-disable-next-line @typescript-eslint/only-throw-error
    if (firstError !== undefined) throw firstError;
    options.signal?.throwIfAborted();
    return { stepsDone: next, steps: steps.length, complete: next === steps.length };
}
async function readExactly(log: ByteSource, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    if (offset < 0 || offset + length > log.size) {
        throw new HvrError(
            'HRL_DATA_LAYOUT',
            `Log data [${offset}, ${offset + length}) lies past the log's ${log.size} bytes.`,
        );
    }
    const data = await log.read(offset, length, signal);
    if (data.length !== length) {
        throw new HvrError('HRL_TRUNCATED', `Read ${data.length} bytes at log offset ${offset}, expected ${length}.`);
    }
    return data;
}
