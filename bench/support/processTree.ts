import { readdirSync, readFileSync } from 'node:fs';

/** CPU and memory of a process and every process it started (Azurite, the Durable engine), read from /proc. */
export interface ProcessTreeSample {
    /** CPU milliseconds (user + system) of this process. */
    selfCpuMs: number;
    /** CPU milliseconds of its descendants alive now (a descendant that exited is no longer counted). */
    childrenCpuMs: number;
    selfRssBytes: number;
    childrenRssBytes: number;
}

/** Linux's USER_HZ: /proc reports CPU time in these ticks (100 on every mainstream kernel). */
const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

interface ProcStat {
    pid: number;
    ppid: number;
    cpuMs: number;
    rssBytes: number;
}

function readStat(pid: number): ProcStat | undefined {
    try {
        const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // The command name is in parentheses and may hold spaces: the fields start after the last ')'.
        const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
        const num = (i: number): number => Number(fields[i - 3]);
        return {
            pid,
            ppid: num(4),
            cpuMs: ((num(14) + num(15)) * 1000) / TICKS_PER_SECOND,
            rssBytes: num(24) * PAGE_BYTES,
        };
    } catch {
        return undefined;
    }
}

function descendantsOf(root: number): ProcStat[] {
    const all: ProcStat[] = [];
    for (const name of readdirSync('/proc')) {
        if (!/^\d+$/.test(name)) continue;
        const s = readStat(Number(name));
        if (s) all.push(s);
    }
    const byParent = new Map<number, ProcStat[]>();
    for (const s of all) byParent.set(s.ppid, [...(byParent.get(s.ppid) ?? []), s]);
    const out: ProcStat[] = [];
    const queue = [root];
    while (queue.length > 0) {
        for (const child of byParent.get(queue.shift()!) ?? []) {
            out.push(child);
            queue.push(child.pid);
        }
    }
    return out;
}

/** One sample of this process and its descendants. */
export function sampleProcessTree(): ProcessTreeSample {
    const usage = process.cpuUsage();
    const children = descendantsOf(process.pid);
    return {
        selfCpuMs: (usage.user + usage.system) / 1000,
        childrenCpuMs: children.reduce((n, c) => n + c.cpuMs, 0),
        selfRssBytes: process.memoryUsage.rss(),
        childrenRssBytes: children.reduce((n, c) => n + c.rssBytes, 0),
    };
}

/** Samples every `intervalMs` and keeps the peak RSS (this process, descendants, both at once) until reset. */
export class PeakRss {
    private timer: NodeJS.Timeout;
    self = 0;
    children = 0;
    total = 0;

    constructor(intervalMs = 500) {
        this.timer = setInterval(() => this.sample(), intervalMs);
        this.timer.unref();
        this.sample();
    }

    sample(): ProcessTreeSample {
        const s = sampleProcessTree();
        this.self = Math.max(this.self, s.selfRssBytes);
        this.children = Math.max(this.children, s.childrenRssBytes);
        this.total = Math.max(this.total, s.selfRssBytes + s.childrenRssBytes);
        return s;
    }

    reset(): void {
        this.self = this.children = this.total = 0;
        this.sample();
    }

    stop(): void {
        clearInterval(this.timer);
    }
}
