import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logBlobName } from '../shared/replica/logBlob';
import { registerReplicaDisk } from '../shared/replica/replicaDisk';
import { getReplicaDisk } from '../shared/state/disks';
import { connectionFromString } from '../shared/storage/connections';
import { startAzurite } from '../packages/functions-local/src';
import { DISK_BYTES, uploadLog, writeWorkload } from './merge';

/**
 * `mergeTrigger` benchmark: a 3 GiB log (bigger than any gRPC message the Functions host could hand a worker)
 * merged by the registered trigger path — upload, the local host's Event Grid emulation enqueues BlobCreated
 * on replica-log-events, the queue trigger runs mergeReplicaLog, which reads the log in ranges. The host runs
 * in a child process: its peak RSS is the merge's (Azurite is another process). BENCH_MERGE_TRIGGER_LOG_MIB
 * sets the size, MERGE_TIME_BUDGET_SECONDS the budget (continuations are counted).
 */

const MiB = 1024 * 1024;
const LOG_BYTES = Number(process.env.BENCH_MERGE_TRIGGER_LOG_MIB ?? 3072) * MiB;

function progress(message: string): void {
    process.stderr.write(`bench mergeTrigger: ${message}\n`);
}

export async function bench(): Promise<Record<string, unknown>> {
    const dir = await mkdtemp(join(tmpdir(), 'hvr-bench-trigger-'));
    const azurite = await startAzurite();
    try {
        progress(`writing a ${LOG_BYTES / MiB} MiB log`);
        const workload = await writeWorkload(dir, LOG_BYTES);
        const siteId = 'benchsite';
        const vmId = 'benchvm';
        const diskId = 'disk0';
        const scope = { conn: connectionFromString(azurite.connectionString), tablePrefix: 'bench' };
        await registerReplicaDisk(scope, {
            siteId,
            vmId,
            diskId,
            sizeBytes: DISK_BYTES,
            createdAt: new Date('2026-03-01T10:00:00Z'),
        });
        progress('starting the merge host');
        const child = spawn(process.execPath, [join(__dirname, 'mergeTriggerHost.js')], {
            env: { ...process.env, BENCH_CONN: azurite.connectionString },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        const lines: string[] = [];
        child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        child.stderr.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
        const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
        const deadlineAt = Date.now() + 30 * 60_000;
        while (!lines.some((l) => l.startsWith('merge host ready'))) {
            if (Date.now() > deadlineAt) throw new Error('the merge host did not start');
            await new Promise((r) => setTimeout(r, 200));
        }
        const name = logBlobName({ siteId, vmId, diskId, sequence: 1, logId: workload.logId });
        progress(`uploading ${name}`);
        await uploadLog(azurite.connectionString, workload, name);
        const uploaded = performance.now();
        for (;;) {
            const row = await getReplicaDisk(scope, vmId, diskId);
            if (row?.disk.sequence === 1) break;
            if (Date.now() > deadlineAt) throw new Error(`the merge did not finish:\n${lines.slice(-10).join('\n')}`);
            await new Promise((r) => setTimeout(r, 250));
        }
        const mergedMs = performance.now() - uploaded;
        child.kill('SIGTERM');
        await exited;
        const { maxRssMiB } = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { maxRssMiB?: number };
        const invocations = lines.filter((l) => /\[mergeReplicaLog\] merge: \S+ → /.test(l)).length;
        const failures = lines.filter((l) => / failed /.test(l));
        if (failures.length > 0) throw new Error(`merge invocations failed:\n${failures.join('\n')}`);
        const result = {
            mergeTrigger: {
                logMiB: Math.round(workload.logSize / MiB),
                dataMiB: Math.round(workload.dataBytes / MiB),
                entries: workload.entries,
                uploadToMergedSeconds: Math.round(mergedMs / 100) / 10,
                mbPerS: Math.round((workload.dataBytes / 1e6 / (mergedMs / 1000)) * 10) / 10,
                peakRssMiB: Math.round(maxRssMiB ?? -1),
                outcomes: invocations,
                continuations: lines.filter((l) => l.includes('a continuation carries on')).length,
                budgetSeconds: Number(process.env.MERGE_TIME_BUDGET_SECONDS ?? 300),
            },
        };
        progress(JSON.stringify(result.mergeTrigger));
        return result;
    } finally {
        await azurite.stop();
        await rm(dir, { recursive: true, force: true });
    }
}
