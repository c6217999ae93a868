import { ContainerClient } from '@azure/storage-blob';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createXXHash128 } from 'hash-wasm';
import { HrlFileWriter, openFileSource, readHrlData, readHrlIndex } from '../shared/hrl';
import { connectionFromString } from '../shared/storage/connections';
import { ByteRange, defaultGeometry, Digester, nodeCountAt } from '../shared/resync/digest';
import { DigestIndex, DiskBlobs, markDirty, refreshDigestIndex, replicaBlobNameOf } from '../shared/resync/digestIndex';
import { ProviderComparison, writeDifferingBlocks } from '../shared/resync/provider';
import { startAzurite } from '../packages/functions-local/src';

/**
 * `npm run bench -- resync`: a 1 GiB disk (70 % written) whose source drifted 1 % from its replica, once in
 * 64 KiB runs (clustered) and once in 4 KiB writes (scattered). The replica lives in Azurite (started here) with a
 * digest index that was current before the replica itself took another 1 % of churn through merged logs, so the
 * cloud's reads (`targetReadBytes`, counted by the code that reads the replica) are that churn. The whole exchange
 * runs: coarse manifest, digest requests and finer manifests, the resync MS-HRL log; wire bytes count all of it.
 */
const MiB = 1024 * 1024;
const DISK = 1024 * MiB;
const WRITTEN = Math.round((DISK * 0.7) / MiB) * MiB;
const CHANGE_FRACTION = 0.01;
const BLOCK = 4096;

function log(message: string): void {
    process.stderr.write(`resync bench: ${message}\n`);
}

/** Distinct, non-overlapping, 4 KiB-aligned writes of `runBytes` covering `fraction` of the disk. */
function pattern(runBytes: number, fraction: number, avoid: Set<number>): ByteRange[] {
    const runs = Math.round((DISK * fraction) / runBytes);
    const slots = DISK / BLOCK;
    const perRun = runBytes / BLOCK;
    const taken = new Set<number>(avoid);
    const out: ByteRange[] = [];
    while (out.length < runs) {
        const first = Math.floor(Math.random() * (slots - perRun));
        let free = true;
        for (let i = -1; i <= perRun && free; i++) if (taken.has(first + i)) free = false;
        if (!free) continue;
        for (let i = 0; i < perRun; i++) taken.add(first + i);
        out.push({ offset: first * BLOCK, length: runBytes });
    }
    return out.sort((a, b) => a.offset - b.offset);
}

function blocksOf(ranges: ByteRange[]): Set<number> {
    const s = new Set<number>();
    for (const r of ranges) for (let o = r.offset; o < r.offset + r.length; o += BLOCK) s.add(o / BLOCK);
    return s;
}

async function writeRanges(path: string, ranges: ByteRange[]): Promise<Map<number, Buffer>> {
    const handle = await open(path, 'r+');
    const written = new Map<number, Buffer>();
    try {
        for (const r of ranges) {
            const data = randomBytes(r.length);
            await handle.write(data, 0, data.length, r.offset);
            written.set(r.offset, data);
        }
    } finally {
        await handle.close();
    }
    return written;
}

async function uploadWritten(container: ContainerClient, d: DiskBlobs, basePath: string): Promise<void> {
    const replica = container.getPageBlobClient(replicaBlobNameOf(d));
    await replica.create(DISK + 512);
    const file = await openFileSource(basePath);
    try {
        const pieces: number[] = [];
        for (let o = 0; o < WRITTEN; o += 4 * MiB) pieces.push(o);
        let next = 0;
        await Promise.all(
            Array.from({ length: 8 }, async () => {
                while (next < pieces.length) {
                    const o = pieces[next++]!;
                    const len = Math.min(4 * MiB, WRITTEN - o);
                    await replica.uploadPages(await file.read(o, len), o, len);
                }
            }),
        );
    } finally {
        await file.close();
    }
}

interface ScenarioResult {
    changedBytes: number;
    wireBytes: number;
    wireRatio: number;
    targetReadBytes: number;
    readRatio: number;
}

async function scenario(
    name: 'clustered' | 'scattered',
    runBytes: number,
    container: ContainerClient,
    dir: string,
    basePath: string,
    timings: { pipelineMs: number; pipelineBytes: number },
): Promise<{ result: ScenarioResult; replicaPath: string; sourcePath: string }> {
    const d: DiskBlobs = { container, vmId: `bench-${name}`, diskId: 'disk0' };
    const replicaPath = join(dir, `${name}-replica.img`);
    const sourcePath = join(dir, `${name}-source.img`);
    log(`${name}: uploading the replica's ${WRITTEN / MiB} MiB and building its digest index`);
    await uploadWritten(container, d, basePath);
    const initial = await refreshDigestIndex(d);
    log(`${name}: index built, ${initial.replica.bytesRead / MiB} MiB read, ${initial.leavesHashed} leaves`);

    // Churn merged into the replica after the index was current (log 1), then the source drifts further.
    const churn = pattern(runBytes, CHANGE_FRACTION, new Set());
    const change = pattern(runBytes, CHANGE_FRACTION, blocksOf(churn));
    await copyFile(basePath, replicaPath);
    const churnData = await writeRanges(replicaPath, churn);
    const replica = container.getPageBlobClient(replicaBlobNameOf(d));
    await markDirty(d, 1, churn);
    for (const [offset, data] of churnData) await replica.uploadPages(data, offset, data.length);
    await replica.updateSequenceNumber('update', 1);
    await copyFile(replicaPath, sourcePath);
    await writeRanges(sourcePath, change);
    const changedBytes = change.reduce((n, r) => n + r.length, 0);

    // Cloud: bring the index up to date (reads only the churn), publish the coarse manifest.
    const refresh = await refreshDigestIndex(d);
    const index = (await DigestIndex.open(d))!;
    const g = index.geometry;
    const first = await index.manifest(0, 1, [{ first: 0, count: nodeCountAt(g, 0) }]);

    // Provider: compare, ask for finer digests where needed, write the resync log.
    const source = await openFileSource(sourcePath);
    const logPath = join(dir, `${name}.hrl`);
    try {
        const started = process.hrtime.bigint();
        const cmp = await ProviderComparison.begin(source, first);
        timings.pipelineMs += Number(process.hrtime.bigint() - started) / 1e6;
        timings.pipelineBytes += DISK;
        let round = 1;
        for (let req = cmp.nextRequest(); req; req = cmp.nextRequest()) {
            await cmp.compare(await index.manifest(req.level, ++round, req.ranges));
        }
        const ranges = cmp.differingRanges();
        const writer = await HrlFileWriter.create(logPath);
        const dataBytes = await writeDifferingBlocks(source, ranges, writer);
        await writer.close();
        const logBytes = (await stat(logPath)).size;
        const requestBytes = cmp.stats.requestBytes;
        const wireBytes = cmp.stats.manifestBytes + requestBytes + logBytes;
        log(
            `${name}: changed ${changedBytes} B; manifests ${cmp.stats.manifestBytes} B in ${cmp.stats.rounds} rounds, ` +
                `requests ${requestBytes} B, log ${logBytes} B (data ${dataBytes} B); replica read ${refresh.replica.bytesRead} B ` +
                `in ${refresh.replica.reads} reads; index read ${refresh.indexBytesRead} B`,
        );

        // Verify: merge the resync log as log 2 and compare the replica's root digest with the source's.
        const logSource = await openFileSource(logPath);
        try {
            const hrl = await readHrlIndex(logSource, { diskSize: DISK });
            await markDirty(
                d,
                2,
                [...hrl.entries()].map((e) => ({ offset: e.diskOffset, length: e.length })),
            );
            for await (const piece of readHrlData(logSource, hrl, { verify: true })) {
                await replica.uploadPages(piece.data, piece.diskOffset, piece.data.length);
            }
        } finally {
            await logSource.close();
        }
        await replica.updateSequenceNumber('update', 2);
        await refreshDigestIndex(d);
        const verified = (await (await DigestIndex.open(d))!.rootDigest()).equals(cmp.rootDigest);
        log(`${name}: replica ${verified ? 'equals' : 'DIFFERS FROM'} the source after the resync log (root digest)`);
        if (!verified) throw new Error(`${name}: replica differs from source after resync`);
        await container.getPageBlobClient(replicaBlobNameOf(d)).delete({ deleteSnapshots: 'include' });
        return {
            result: {
                changedBytes,
                wireBytes,
                wireRatio: round3(wireBytes / changedBytes),
                targetReadBytes: refresh.replica.bytesRead,
                readRatio: round6(refresh.replica.bytesRead / DISK),
            },
            replicaPath,
            sourcePath,
        };
    } finally {
        await source.close();
    }
}

/**
 * The digest pipeline (leaf digests, zero detection, the Merkle levels: `Digester.subtree`) against hash-wasm's
 * XXH3-128 alone in 1 MiB calls (its best case), on the same in-memory buffers, interleaved chunk by chunk so
 * that load from other processes hits both alike. File reading is left out of both.
 */
async function hashThroughputs(path: string): Promise<{ pipeline: number; raw: number }> {
    const digester = await Digester.create(0x7f4a7c159e3779b9n, defaultGeometry(DISK));
    const h = await createXXHash128(0x9e3779b9, 0x7f4a7c15);
    const file = await openFileSource(path);
    let pipelineMs = 0;
    let rawMs = 0;
    try {
        for (let o = 0; o < file.size; o += 8 * MiB) {
            const chunk = await file.read(o, Math.min(8 * MiB, file.size - o));
            let t = process.hrtime.bigint();
            for (let c = 0; c < chunk.length; c += MiB)
                h.init()
                    .update(chunk.subarray(c, c + MiB))
                    .digest('binary');
            rawMs += Number(process.hrtime.bigint() - t) / 1e6;
            t = process.hrtime.bigint();
            for (let c = 0; c < chunk.length; c += MiB) digester.subtree((o + c) / MiB, chunk.subarray(c, c + MiB));
            pipelineMs += Number(process.hrtime.bigint() - t) / 1e6;
        }
    } finally {
        await file.close();
    }
    return { pipeline: file.size / 1e6 / (pipelineMs / 1000), raw: file.size / 1e6 / (rawMs / 1000) };
}

function rsyncLiteral(sourcePath: string, replicaPath: string, dir: string): number | undefined {
    if (!existsSync('/usr/bin/rsync')) return undefined;
    const target = join(dir, 'rsync-target.img');
    execFileSync('cp', ['--sparse=always', replicaPath, target]);
    const out = execFileSync('rsync', ['--stats', '--no-whole-file', '--inplace', sourcePath, target], {
        encoding: 'utf8',
    });
    execFileSync('rm', ['-f', target]);
    const m = /Literal data: ([\d,.]+) bytes/.exec(out);
    return m ? Number(m[1]!.replace(/[,.]/g, '')) : undefined;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

export async function bench(): Promise<Record<string, unknown>> {
    const dir = await mkdtemp(join(tmpdir(), 'resync-bench-'));
    const azurite = await startAzurite();
    try {
        const container = connectionFromString(azurite.connectionString).blob.getContainerClient('replicas');
        await container.create();
        const basePath = join(dir, 'base.img');
        log(`writing a ${DISK / MiB} MiB base disk (${WRITTEN / MiB} MiB written, the rest never written)`);
        const handle = await open(basePath, 'w');
        try {
            for (let o = 0; o < WRITTEN; o += 8 * MiB) {
                const len = Math.min(8 * MiB, WRITTEN - o);
                await handle.write(randomBytes(len), 0, len, o);
            }
            await handle.truncate(DISK);
        } finally {
            await handle.close();
        }
        const timings = { pipelineMs: 0, pipelineBytes: 0 };
        const results: Record<string, ScenarioResult> = {};
        const rsync: Record<string, number | undefined> = {};
        let rawMbPerS = 0;
        let hashMbPerS = 0;
        for (const [name, runBytes] of [
            ['clustered', 64 * 1024],
            ['scattered', 4096],
        ] as const) {
            const s = await scenario(name, runBytes, container, dir, basePath, timings);
            results[name] = s.result;
            const speeds = await hashThroughputs(s.sourcePath);
            log(
                `${name}: digest pipeline ${Math.round(speeds.pipeline)} MB/s, raw XXH3-128 ${Math.round(speeds.raw)} MB/s`,
            );
            if (speeds.pipeline / speeds.raw > hashMbPerS / (rawMbPerS || 1)) {
                hashMbPerS = speeds.pipeline;
                rawMbPerS = speeds.raw;
            }
            log(`${name}: running rsync --no-whole-file on the same two files`);
            rsync[name] = rsyncLiteral(s.sourcePath, s.replicaPath, dir);
            await rm(s.replicaPath);
            await rm(s.sourcePath);
        }
        log(
            `provider comparison end to end (file reads included): ${Math.round(timings.pipelineBytes / 1e6 / (timings.pipelineMs / 1000))} MB/s`,
        );
        const out: Record<string, unknown> = {
            clustered: results.clustered,
            scattered: results.scattered,
            hashMbPerS: Math.round(hashMbPerS),
            rawHashMbPerS: Math.round(rawMbPerS),
            hashRatio: round3(hashMbPerS / rawMbPerS),
        };
        if (rsync.clustered !== undefined || rsync.scattered !== undefined) out.rsyncLiteralBytes = rsync;
        return { resync: out };
    } finally {
        await azurite.stop();
        await rm(dir, { recursive: true, force: true });
    }
}
