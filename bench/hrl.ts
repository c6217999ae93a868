import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { byteSum } from '../shared/hrl/checksum';
import { bufferSource, openFileSource } from '../shared/hrl/source';
import { readHrlData, readHrlIndex, validateHrl } from '../shared/hrl/reader';
import { HrlWriteEntry, writeHrl } from '../shared/hrl/writer';

/**
 * `hrl` benchmark: the reader's parse + verify throughput (header, metadata walk, layout, and every data
 * checksum) over a log of a few hundred MiB, against a memcpy (Buffer.copy) of the same bytes in the same run.
 * Runs alternate between the two so that machine noise hits both alike; medians are reported.
 * Progress on stderr; the result is returned as JSON.
 */

const MiB = 1024 * 1024;
const LOG_MIB = Number(process.env.BENCH_HRL_LOG_MIB ?? 384);
const ROUNDS = Number(process.env.BENCH_HRL_ROUNDS ?? 7);

function progress(message: string): void {
    process.stderr.write(`bench hrl: ${message}\n`);
}

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function timed(fn: () => unknown): Promise<number> {
    const start = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - start) / 1e6;
}

const mbPerS = (bytes: number, ms: number): number => Math.round(bytes / 1e6 / (ms / 1000));

/** Entries of 4 KiB to 1 MiB (mostly small, as replication traffic is), data sliced from a random pool. */
function* workload(totalBytes: number): Generator<HrlWriteEntry> {
    const pool = randomBytes(64 * MiB);
    let written = 0;
    let seed = 12345;
    const next = (): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed / 2 ** 32;
    };
    while (written < totalBytes) {
        const r = next();
        const sectors = r < 0.6 ? 8 : r < 0.85 ? 8 * (1 + Math.floor(next() * 16)) : 8 * (1 + Math.floor(next() * 256));
        const length = Math.min(sectors * 512, totalBytes - written);
        const from = Math.floor((next() * (pool.length - length)) / 512) * 512;
        yield { diskOffset: Math.floor(next() * 2 ** 24) * 512, data: pool.subarray(from, from + length) };
        written += length;
    }
}

export async function bench(): Promise<Record<string, unknown>> {
    progress(`writing a ${LOG_MIB} MiB log in memory`);
    const { log } = writeHrl(workload(LOG_MIB * MiB), { dataChecksums: true });
    const source = bufferSource(log);
    const index = await validateHrl(source);
    progress(`${index.entryCount} entries in ${index.metadataBlockCount} metadata blocks, ${log.length} bytes`);

    const copy = Buffer.allocUnsafe(log.length);
    log.copy(copy); // fault the pages in before timing
    const memcpyMs: number[] = [];
    const verifyMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
        memcpyMs.push(await timed(() => log.copy(copy)));
        verifyMs.push(await timed(() => validateHrl(source)));
        progress(
            `round ${round + 1}/${ROUNDS}: memcpy ${memcpyMs.at(-1)!.toFixed(1)} ms, parse+verify ${verifyMs.at(-1)!.toFixed(1)} ms`,
        );
    }

    const indexMs: number[] = [];
    const sumMs: number[] = [];
    for (let i = 0; i < 3; i++) {
        indexMs.push(await timed(() => readHrlIndex(source)));
        sumMs.push(await timed(() => byteSum(log)));
    }
    let streamed = 0;
    const streamMs = await timed(async () => {
        for await (const piece of readHrlData(source, index, { verify: true })) streamed += piece.data.length;
    });

    progress('parse+verify from a file (page cache warm)');
    const dir = await mkdtemp(join(tmpdir(), 'bench-hrl-'));
    let fileMs = 0;
    try {
        const path = join(dir, 'bench.hrl');
        await writeFile(path, log);
        const file = await openFileSource(path);
        try {
            await validateHrl(file);
            fileMs = await timed(() => validateHrl(file));
        } finally {
            await file.close();
        }
    } finally {
        await rm(dir, { recursive: true, force: true });
    }

    const verify = mbPerS(log.length, median(verifyMs));
    const memcpy = mbPerS(log.length, median(memcpyMs));
    return {
        hrl: {
            mbPerS: verify,
            memcpyMbPerS: memcpy,
            ratio: Math.round((verify / memcpy) * 100) / 100,
            logBytes: log.length,
            entries: index.entryCount,
            metadataBlocks: index.metadataBlockCount,
            rounds: ROUNDS,
            bestMbPerS: mbPerS(log.length, Math.min(...verifyMs)),
            bestMemcpyMbPerS: mbPerS(log.length, Math.min(...memcpyMs)),
            indexOnlyMs: Math.round(median(indexMs) * 10) / 10,
            byteSumMbPerS: mbPerS(log.length, median(sumMs)),
            readDataVerifyMbPerS: mbPerS(streamed, streamMs),
            fileSourceMbPerS: mbPerS(log.length, fileMs),
        },
    };
}
