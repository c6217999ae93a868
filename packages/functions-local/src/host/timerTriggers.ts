import { TableClient } from '@azure/data-tables';
import { Timer } from '@azure/functions';
import { ensureErrorType } from '../errors';
import type { Clock } from '../durable/clock';
import { encodeKey, getEntityOrUndefined, tableFor, deadline } from '../storage';
import { HostStorage } from './hostStorage';
import { CronSchedule, parseNcrontab } from './ncrontab';
import { RegisteredFunction } from './registry';

/** Last and next occurrence per timer function, so a restart knows what it missed (the `useMonitor` record). */
export const TIMER_STATUS_TABLE = 'hostTimerStatus';

/** setTimeout cannot wait longer than this; longer waits are re-armed. */
const MAX_TIMEOUT_MS = 2_147_483_647;

interface TimerStatusRow {
    partitionKey: string;
    rowKey: string;
    last: string;
    next: string;
    lastUpdated: string;
}

interface ScheduledTimer {
    fn: RegisteredFunction;
    schedule: CronSchedule;
    runOnStartup: boolean;
    useMonitor: boolean;
    handle?: NodeJS.Timeout;
    running?: Promise<void>;
    /** An occurrence came while the previous run was still going: run once more, past due, when it ends. */
    owed: boolean;
    last?: Date;
    next?: Date;
}

export interface TimerSchedulerOptions {
    functions: RegisteredFunction[];
    host: HostStorage;
    settings: Record<string, string | undefined>;
    clock: Clock;
    invoke(fn: RegisteredFunction, timer: Timer): Promise<unknown>;
    log(message: string): void;
}

/**
 * Fires timer functions on their NCRONTAB schedules (UTC). Like the Functions host it runs one occurrence
 * of a function at a time, honours `runOnStartup`, and, with `useMonitor` (the default), records the
 * schedule in storage so that an occurrence missed while the host was down fires at start with
 * `isPastDue: true`.
 */
export class TimerScheduler {
    private readonly timers = new Map<string, ScheduledTimer>();
    private stopped = false;
    private status: TableClient | undefined;

    constructor(private readonly options: TimerSchedulerOptions) {
        for (const fn of options.functions) {
            const schedule = parseNcrontab(String(fn.trigger.schedule), options.settings);
            this.timers.set(fn.name, {
                fn,
                schedule,
                runOnStartup: fn.trigger.runOnStartup === true,
                useMonitor: fn.trigger.useMonitor !== false,
                owed: false,
            });
        }
    }

    /** The next occurrence per timer function (for the start-up listing). */
    nextOccurrences(): Map<string, Date | undefined> {
        const now = this.options.clock.now();
        return new Map([...this.timers].map(([name, t]) => [name, t.next ?? t.schedule.next(now)]));
    }

    async start(): Promise<void> {
        if (this.timers.size === 0) return;
        this.status = await tableFor(this.options.host.connection, TIMER_STATUS_TABLE);
        const now = this.options.clock.now();
        for (const timer of this.timers.values()) {
            const recorded = timer.useMonitor ? await this.readStatus(timer.fn.name) : undefined;
            if (recorded) timer.last = new Date(recorded.last);
            const missed = recorded !== undefined && Date.parse(recorded.next) < now.getTime();
            if (missed || timer.runOnStartup) {
                this.runNow(timer, missed);
            }
            this.arm(timer);
        }
    }

    /** Invokes `name` now, as its schedule would, and resolves when that run has finished. */
    async fireTimer(name: string): Promise<void> {
        const timer = this.timers.get(name);
        if (!timer) {
            throw new Error(`No timer function "${name}" (have: ${[...this.timers.keys()].join(', ') || 'none'})`);
        }
        await timer.running;
        this.runNow(timer, false);
        await timer.running;
    }

    async stop(): Promise<void> {
        this.stopped = true;
        for (const timer of this.timers.values()) clearTimeout(timer.handle);
    }

    private arm(timer: ScheduledTimer): void {
        if (this.stopped) return;
        const now = this.options.clock.now();
        const next = timer.schedule.next(now);
        timer.next = next;
        if (!next) return;
        const wait = next.getTime() - now.getTime();
        timer.handle = setTimeout(
            () => {
                if (this.options.clock.now().getTime() + 5 < next.getTime()) {
                    this.arm(timer);
                    return;
                }
                if (timer.running) timer.owed = true;
                else this.runNow(timer, false);
                this.arm(timer);
            },
            Math.min(Math.max(wait, 0), MAX_TIMEOUT_MS),
        );
        timer.handle.unref();
    }

    private runNow(timer: ScheduledTimer, isPastDue: boolean): void {
        if (timer.running) {
            timer.owed = true;
            return;
        }
        const now = this.options.clock.now();
        const next = timer.schedule.next(now);
        const input: Timer = {
            isPastDue,
            schedule: { adjustForDST: false },
            scheduleStatus: {
                last: (timer.last ?? new Date(0)).toISOString(),
                next: (next ?? now).toISOString(),
                lastUpdated: now.toISOString(),
            },
        };
        timer.running = (async () => {
            try {
                await this.options.invoke(timer.fn, input);
            } catch (err) {
                this.options.log(`${timer.fn.name} (timer) failed: ${ensureErrorType(err).message}`);
            }
            timer.last = now;
            if (timer.useMonitor) await this.writeStatus(timer.fn.name, now, next ?? now);
        })().finally(() => {
            timer.running = undefined;
            if (timer.owed && !this.stopped) {
                timer.owed = false;
                this.runNow(timer, true);
            }
        });
    }

    private async readStatus(name: string): Promise<TimerStatusRow | undefined> {
        return getEntityOrUndefined<TimerStatusRow>(this.status!, 'timers', encodeKey(name));
    }

    private async writeStatus(name: string, last: Date, next: Date): Promise<void> {
        try {
            await this.status?.upsertEntity<TimerStatusRow>(
                {
                    partitionKey: 'timers',
                    rowKey: encodeKey(name),
                    last: last.toISOString(),
                    next: next.toISOString(),
                    lastUpdated: this.options.clock.now().toISOString(),
                },
                'Replace',
                { abortSignal: deadline() },
            );
        } catch (err) {
            this.options.log(`Could not record the schedule of ${name}: ${ensureErrorType(err).message}`);
        }
    }
}
