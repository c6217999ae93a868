import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { ProtectedItem, createProtectedItem } from '../../shared/state/protectedItems';
import { getReplicaDisk, ReplicaDiskRecord } from '../../shared/state/disks';
import { ReplicaHarness } from '../integration/replica/harness';

const ROOT = join(__dirname, '../..');

/** A merge host in a child process (the local host with the merge function), with faults from CRASH_AT. */
export interface MergeHostProcess {
    child: ChildProcess;
    output: string[];
    /** Resolves with the signal or exit code once the process has ended. */
    ended: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

export function startMergeHost(
    h: ReplicaHarness,
    connectionString: string,
    env: Record<string, string>,
): MergeHostProcess {
    const child = spawn(
        process.execPath,
        [
            '-r',
            join(__dirname, 'child/register.js'),
            '-r',
            join(__dirname, 'child/faults.ts'),
            join(__dirname, 'child/mergeHost.ts'),
        ],
        {
            cwd: ROOT,
            env: { ...process.env, CRASH_STORAGE: connectionString, STATE_TABLE_PREFIX: h.scope.tablePrefix, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        },
    );
    const output = collectOutputLines(child);
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    return { child, output, ended };
}

/** Polls until `check` returns a value, or fails after `timeoutMs` with what `describe` says. */
export async function waitFor<T>(
    check: () => Promise<T | undefined>,
    timeoutMs: number,
    describe: () => string,
): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
        const value = await check();
        if (value !== undefined) return value;
        if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

export async function diskRow(h: ReplicaHarness, diskId = 'disk0'): Promise<ReplicaDiskRecord> {
    return (await getReplicaDisk(h.scope, h.vmId, diskId))!.disk;
}

/** The VM as protected and healthy, as the lifecycle leaves it once initial replication is done. */
export async function protectedItemFor(h: ReplicaHarness, diskIds: string[]): Promise<ProtectedItem> {
    const at = h.clock.now().toISOString();
    const item: ProtectedItem = {
        vmId: h.vmId,
        siteId: h.siteId,
        vmName: 'crash-vm',
        generation: 2,
        policyName: 'p',
        disks: diskIds.map((diskId, i) => ({
            diskId,
            sizeBytes: h.disks.get(diskId)!.virtualSize,
            logicalSectorBytes: 512,
            isOsDisk: i === 0,
        })),
        protectionState: 'Protected',
        protectionStateDescription: 'Protected',
        resynchronizationState: 'None',
        replicationHealth: 'Normal',
        healthReasons: [],
        createdAt: at,
        updatedAt: at,
    };
    await createProtectedItem(h.scope, item);
    return item;
}

/** Every whole line a child writes to stdout or stderr, in order, as it arrives. */
export function collectOutputLines(child: ChildProcess): string[] {
    const output: string[] = [];
    let partial = '';
    const collect = (chunk: Buffer): void => {
        partial += chunk.toString('utf8');
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        output.push(...lines);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    return output;
}
