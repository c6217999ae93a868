import { ContainerClient } from '@azure/storage-blob';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
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
    /** The whole resync: index refresh, manifests, comparison (source read), log, merge, verification. */
    endToEndMs: number;
    /** Downloading the replica once, in the same run right after. */
    readReplicaOnceMs: number;
    /** endToEndMs / readReplicaOnceMs. */
    endToEndVsReadOnce: number;
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
    const resyncStarted = process.hrtime.bigint();
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
        const endToEndMs = Number(process.hrtime.bigint() - resyncStarted) / 1e6;
        const readReplicaOnceMs = await readReplicaOnce(container, d);
        log(
            `${name}: resync end to end ${Math.round(endToEndMs)} ms; reading the replica once ${Math.round(readReplicaOnceMs)} ms`,
        );
        await container.getPageBlobClient(replicaBlobNameOf(d)).delete({ deleteSnapshots: 'include' });
        return {
            result: {
                changedBytes,
                wireBytes,
                wireRatio: round3(wireBytes / changedBytes),
                targetReadBytes: refresh.replica.bytesRead,
                readRatio: round6(refresh.replica.bytesRead / DISK),
                endToEndMs: Math.round(endToEndMs),
                readReplicaOnceMs: Math.round(readReplicaOnceMs),
                endToEndVsReadOnce: round3(endToEndMs / readReplicaOnceMs),
            },
            replicaPath,
            sourcePath,
        };
    } finally {
        await source.close();
    }
}

/** One XXH3-128 implementation: hashes `data` whole (one call) and returns the 16 digest bytes. */
interface Xxh3Candidate {
    name: string;
    hash(data: Uint8Array): Uint8Array;
}

const SEED_LOW = 0x9e3779b9;
const SEED_HIGH = 0x7f4a7c15;

/**
 * Every XXH3-128 for Node that loads here: hash-wasm (the pipeline's, WebAssembly), and the native ones when their
 * packages resolve (`@node-rs/xxhash`, prebuilt N-API; `xxhash-addon`, prebuilt inside its tarball). Each is
 * checked to give hash-wasm's digest for the same seed before it is timed.
 */
async function xxh3Candidates(): Promise<{ candidates: Xxh3Candidate[]; unavailable: Record<string, string> }> {
    const wasm = await createXXHash128(SEED_LOW, SEED_HIGH);
    const candidates: Xxh3Candidate[] = [{ name: 'hash-wasm', hash: (d) => wasm.init().update(d).digest('binary') }];
    const unavailable: Record<string, string> = {};
    const seed = (BigInt(SEED_HIGH) << 32n) | BigInt(SEED_LOW);
    const seedBytes = Buffer.alloc(8);
    seedBytes.writeBigUInt64BE(seed);
    const optional: [string, () => Xxh3Candidate][] = [
        [
            '@node-rs/xxhash',
            () => {
                // eslint-disable-next-line @typescript-eslint/no-require-imports
                const m = require('@node-rs/xxhash') as { xxh3: { xxh128(d: Uint8Array, seed: bigint): bigint } };
                return {
                    name: '@node-rs/xxhash',
                    hash: (d) => {
                        const out = Buffer.alloc(16);
                        const h = m.xxh3.xxh128(d, seed);
                        out.writeBigUInt64BE(h >> 64n, 0);
                        out.writeBigUInt64BE(h & 0xffffffffffffffffn, 8);
                        return out;
                    },
                };
            },
        ],
        [
            'xxhash-addon',
            () => {
                // eslint-disable-next-line @typescript-eslint/no-require-imports
                const m = require('xxhash-addon') as {
                    XXHash128: new (seed: Buffer) => { update(d: Uint8Array): void; digest(): Buffer; reset(): void };
                };
                // Its static hash() ignores the seed; a seeded instance, reset between calls, does not.
                const h = new m.XXHash128(seedBytes);
                return {
                    name: 'xxhash-addon',
                    hash: (d) => {
                        h.reset();
                        h.update(d);
                        return h.digest();
                    },
                };
            },
        ],
    ];
    const probe = randomBytes(5000);
    const expected = Buffer.from(candidates[0]!.hash(probe));
    for (const [name, load] of optional) {
        try {
            const c = load();
            const got = Buffer.from(c.hash(probe));
            if (!got.equals(expected)) unavailable[name] = `digest ${got.toString('hex')} is not hash-wasm's`;
            else candidates.push(c);
        } catch (err) {
            unavailable[name] = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
        }
    }
    return { candidates, unavailable };
}

const HASH_BUFFER = 64 * MiB;
const HASH_ROUNDS = 5;
const CALL_SIZES = [4096, 64 * 1024, MiB, 8 * MiB];

/**
 * On 64 MiB of random bytes (no zero leaf to skip), in memory: the digest pipeline (`Digester.subtree` over each
 * 1 MiB coarse block: every 4 KiB leaf hashed, then the Merkle levels) against every XXH3-128 that loads, each
 * hashing the same bytes in calls of 4 KiB (the pipeline's leaf), 64 KiB, 1 MiB and 8 MiB. Rounds interleave
 * every cell in a rotating order, so load from other processes hits them alike; each cell's figure is the
 * median of its rounds, MB/s.
 */
export async function hashThroughputs(): Promise<{
    pipeline: number;
    libraries: Record<string, Record<string, number>>;
    fastest: { library: string; callBytes: number; mbPerS: number };
    fastestAtLeaf: { library: string; mbPerS: number };
    unavailable: Record<string, string>;
}> {
    const digester = await Digester.create(0x7f4a7c159e3779b9n, defaultGeometry(DISK));
    const { candidates, unavailable } = await xxh3Candidates();
    const data = randomBytes(HASH_BUFFER);
    type Cell = { key: string; run: () => void };
    const cells: Cell[] = [
        {
            key: 'pipeline',
            run: () => {
                for (let c = 0; c < data.length; c += MiB) digester.subtree(c / MiB, data.subarray(c, c + MiB));
            },
        },
    ];
    for (const lib of candidates) {
        for (const size of CALL_SIZES) {
            cells.push({
                key: `${lib.name} ${size}`,
                run: () => {
                    for (let c = 0; c < data.length; c += size) lib.hash(data.subarray(c, c + size));
                },
            });
        }
    }
    const samples = new Map<string, number[]>(cells.map((c) => [c.key, []]));
    for (let round = 0; round < HASH_ROUNDS; round++) {
        for (let i = 0; i < cells.length; i++) {
            const cell = cells[(i + round) % cells.length]!;
            const t = process.hrtime.bigint();
            cell.run();
            const ms = Number(process.hrtime.bigint() - t) / 1e6;
            samples.get(cell.key)!.push(data.length / 1e6 / (ms / 1000));
        }
    }
    const median = (xs: number[]): number => {
        const s = [...xs].sort((a, b) => a - b);
        return Math.round(s[Math.floor(s.length / 2)]!);
    };
    const libraries: Record<string, Record<string, number>> = {};
    let fastest = { library: '', callBytes: 0, mbPerS: 0 };
    let fastestAtLeaf = { library: '', mbPerS: 0 };
    for (const lib of candidates) {
        libraries[lib.name] = {};
        for (const size of CALL_SIZES) {
            const mbPerS = median(samples.get(`${lib.name} ${size}`)!);
            libraries[lib.name]![String(size)] = mbPerS;
            if (mbPerS > fastest.mbPerS) fastest = { library: lib.name, callBytes: size, mbPerS };
            if (size === 4096 && mbPerS > fastestAtLeaf.mbPerS) fastestAtLeaf = { library: lib.name, mbPerS };
        }
    }
    return { pipeline: median(samples.get('pipeline')!), libraries, fastest, fastestAtLeaf, unavailable };
}

/**
 * Reading the replica once: the whole page blob downloaded in 8 MiB ranges, 8 in flight (the fastest way out of
 * Azurite here, notes/platform-facts.md), its bytes discarded. What any resync that reads the replica pays.
 */
async function readReplicaOnce(container: ContainerClient, d: DiskBlobs): Promise<number> {
    const blob = container.getPageBlobClient(replicaBlobNameOf(d));
    const started = process.hrtime.bigint();
    const pieces: number[] = [];
    for (let o = 0; o < DISK; o += 8 * MiB) pieces.push(o);
    let next = 0;
    await Promise.all(
        Array.from({ length: 8 }, async () => {
            while (next < pieces.length) {
                const o = pieces[next++]!;
                await blob.downloadToBuffer(o, Math.min(8 * MiB, DISK - o));
            }
        }),
    );
    return Number(process.hrtime.bigint() - started) / 1e6;
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
        for (const [name, runBytes] of [
            ['clustered', 64 * 1024],
            ['scattered', 4096],
        ] as const) {
            const s = await scenario(name, runBytes, container, dir, basePath, timings);
            results[name] = s.result;
            log(`${name}: running rsync --no-whole-file on the same two files`);
            rsync[name] = rsyncLiteral(s.sourcePath, s.replicaPath, dir);
            await rm(s.replicaPath);
            await rm(s.sourcePath);
        }
        log(
            `hashing ${HASH_BUFFER / MiB} MiB of random bytes: the pipeline and every XXH3-128 that loads, interleaved`,
        );
        const speeds = await hashThroughputs();
        log(
            `digest pipeline ${speeds.pipeline} MB/s; ${JSON.stringify(speeds.libraries)}; unavailable ${JSON.stringify(speeds.unavailable)}`,
        );
        log(
            `provider comparison end to end (file reads included): ${Math.round(timings.pipelineBytes / 1e6 / (timings.pipelineMs / 1000))} MB/s`,
        );
        const out: Record<string, unknown> = {
            clustered: results.clustered,
            scattered: results.scattered,
            hashMbPerS: speeds.pipeline,
            rawHashMbPerS: speeds.fastest.mbPerS,
            rawHash: speeds.fastest,
            hashRatio: round3(speeds.pipeline / speeds.fastest.mbPerS),
            leafHash: speeds.fastestAtLeaf,
            xxh3MbPerS: speeds.libraries,
            ...(Object.keys(speeds.unavailable).length > 0 ? { xxh3Unavailable: speeds.unavailable } : {}),
            load: loadavg().map((l) => Math.round(l * 10) / 10),
        };
        if (rsync.clustered !== undefined || rsync.scattered !== undefined) out.rsyncLiteralBytes = rsync;
        return { resync: out };
    } finally {
        await azurite.stop();
        await rm(dir, { recursive: true, force: true });
    }
}
