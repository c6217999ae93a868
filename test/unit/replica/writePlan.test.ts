import fc from 'fast-check';
import {
    assemblePut,
    LogWrite,
    MAX_PUT_PAGE_BYTES,
    minimumPutPageCalls,
    PAGE_BYTES,
    planPageWrites,
    planReadGroups,
    resolveLastWriterWins,
} from '../../../shared/replica/writePlan';

const SECTOR = PAGE_BYTES;

/** Applies writes one by one to a sector map: the reference the planner must agree with. */
function naiveOwners(writes: LogWrite[], sectors: number): Int32Array {
    const owner = new Int32Array(sectors).fill(-1);
    writes.forEach((w, i) => {
        for (let s = w.diskOffset / SECTOR; s < (w.diskOffset + w.length) / SECTOR; s++) owner[s] = i;
    });
    return owner;
}

/** Writes laid out in a log one after another, like a real log's data region. */
const logWrites = (sectors: number, maxLen: number): fc.Arbitrary<LogWrite[]> =>
    fc
        .array(
            fc.record({
                start: fc.nat(sectors - 1),
                len: fc.integer({ min: 0, max: maxLen }),
                zero: fc.boolean(),
            }),
            { maxLength: 60 },
        )
        .map((raw) => {
            let logOffset = 4096;
            return raw.map(({ start, len, zero }) => {
                const length = Math.min(len, sectors - start) * SECTOR;
                const w: LogWrite = { diskOffset: start * SECTOR, length, logOffset, zero };
                logOffset += length;
                return w;
            });
        });

describe('last-writer-wins resolution', () => {
    it('gives every sector to the last write that covered it, and no sector to two extents', () => {
        fc.assert(
            fc.property(logWrites(256, 64), (writes) => {
                const owner = naiveOwners(writes, 256);
                const extents = resolveLastWriterWins(writes);
                const seen = new Int32Array(256).fill(-1);
                let prevEnd = -1;
                for (const e of extents) {
                    expect(e.diskOffset).toBeGreaterThanOrEqual(prevEnd);
                    prevEnd = e.diskOffset + e.length;
                    for (let k = 0; k < e.length / SECTOR; k++) {
                        const sector = e.diskOffset / SECTOR + k;
                        const logSector = e.logOffset + k * SECTOR;
                        const w = writes.findIndex(
                            (x) =>
                                x.logOffset <= logSector &&
                                logSector < x.logOffset + x.length &&
                                x.diskOffset + (logSector - x.logOffset) === sector * SECTOR,
                        );
                        seen[sector] = w;
                        expect(e.zero).toBe(writes[w]!.zero === true);
                    }
                }
                expect(Array.from(seen)).toEqual(Array.from(owner));
            }),
        );
    });

    it('keeps the later of two writes at the same offset, as the spec example does', () => {
        const extents = resolveLastWriterWins([
            { diskOffset: 0, length: 4096, logOffset: 4096 },
            { diskOffset: 0, length: 4096, logOffset: 8192 },
        ]);
        expect(extents).toEqual([{ diskOffset: 0, length: 4096, logOffset: 8192, zero: false }]);
    });

    it('splits an older write around a newer one inside it', () => {
        const extents = resolveLastWriterWins([
            { diskOffset: 0, length: 8192, logOffset: 4096 },
            { diskOffset: 2048, length: 1024, logOffset: 12288 },
        ]);
        expect(extents).toEqual([
            { diskOffset: 0, length: 2048, logOffset: 4096, zero: false },
            { diskOffset: 2048, length: 1024, logOffset: 12288, zero: false },
            { diskOffset: 3072, length: 5120, logOffset: 4096 + 3072, zero: false },
        ]);
    });

    it('rejects a write that is not whole sectors, naming it', () => {
        expect(() => resolveLastWriterWins([{ diskOffset: 100, length: 512, logOffset: 0 }])).toThrow(
            /entry 0 writes 512 bytes at disk offset 100/,
        );
    });
});

describe('coalescing into page blob calls', () => {
    it('covers exactly the resolved extents with 512-aligned puts of at most 4 MiB and clears for zeros', () => {
        fc.assert(
            fc.property(logWrites(4000, 1200), fc.integer({ min: 1, max: 400 }), (writes, putSectors) => {
                const maxPut = putSectors * SECTOR;
                const extents = resolveLastWriterWins(writes);
                const calls = planPageWrites(extents, maxPut);
                // Rebuild a log-offset map from the calls and compare with the extents, sector by sector.
                const fromCalls = new Map<number, number | 'zero'>();
                for (const c of calls) {
                    expect(c.diskOffset % SECTOR).toBe(0);
                    expect(c.length % SECTOR).toBe(0);
                    expect(c.length).toBeGreaterThan(0);
                    if (c.kind === 'clear') {
                        for (let d = c.diskOffset; d < c.diskOffset + c.length; d += SECTOR) fromCalls.set(d, 'zero');
                        continue;
                    }
                    expect(c.length).toBeLessThanOrEqual(maxPut);
                    expect(c.pieces.reduce((s, p) => s + p.length, 0)).toBe(c.length);
                    let d = c.diskOffset;
                    for (const p of c.pieces) {
                        for (let k = 0; k < p.length; k += SECTOR, d += SECTOR) {
                            if (fromCalls.has(d)) throw new Error(`sector at ${d} written twice`);
                            fromCalls.set(d, p.logOffset + k);
                        }
                    }
                }
                const expected = new Map<number, number | 'zero'>();
                for (const e of extents) {
                    for (let k = 0; k < e.length; k += SECTOR) {
                        expected.set(e.diskOffset + k, e.zero ? 'zero' : e.logOffset + k);
                    }
                }
                expect(fromCalls).toEqual(expected);
                expect(calls.filter((c) => c.kind === 'put').length).toBe(minimumPutPageCalls(extents, maxPut));
            }),
            { numRuns: 100 },
        );
    });

    it('coalesces disk-adjacent writes from distant parts of the log into one Put Page', () => {
        const calls = planPageWrites(
            resolveLastWriterWins([
                { diskOffset: 4096, length: 4096, logOffset: 4096 },
                { diskOffset: 0, length: 4096, logOffset: 1_000_000 * 512 },
            ]),
        );
        expect(calls).toEqual([
            {
                kind: 'put',
                diskOffset: 0,
                length: 8192,
                pieces: [
                    { logOffset: 1_000_000 * 512, length: 4096 },
                    { logOffset: 4096, length: 4096 },
                ],
            },
        ]);
    });

    it('splits a 9 MiB sequential run into three Put Pages, the fewest Azure allows', () => {
        const calls = planPageWrites(
            resolveLastWriterWins([{ diskOffset: 0, length: 9 * 1024 * 1024, logOffset: 4096 }]),
        );
        expect(calls.map((c) => c.length)).toEqual([MAX_PUT_PAGE_BYTES, MAX_PUT_PAGE_BYTES, 1024 * 1024]);
    });

    it('refuses a Put Page size Azure would reject', () => {
        expect(() => planPageWrites([], 8 * 1024 * 1024)).toThrow(/≤ 4 MiB/);
        expect(() => planPageWrites([], 1000)).toThrow(/multiple of 512/);
    });
});

describe('grouping the log reads', () => {
    it('reads every byte each Put Page needs, and reassembles it in disk order', () => {
        fc.assert(
            fc.property(logWrites(20000, 9000), fc.integer({ min: 1, max: 64 }), (writes, targetKiB) => {
                const logSize = writes.reduce((s, w) => Math.max(s, w.logOffset + w.length), 4096);
                // The log's byte at offset o is a function of o, so a misplaced piece is visible.
                const log = Buffer.alloc(logSize);
                for (let o = 0; o < logSize; o += 4) log.writeUInt32LE(o, o);
                const calls = planPageWrites(resolveLastWriterWins(writes.map((w) => ({ ...w, zero: false }))));
                const groups = planReadGroups(calls, { targetBytes: targetKiB * 1024, mergeGapBytes: 2048 });
                expect(groups.flatMap((g) => g.writes).length).toBe(calls.length);
                for (const g of groups) {
                    const buffers = g.reads.map((r) => log.subarray(r.logOffset, r.logOffset + r.length));
                    for (const w of g.writes) {
                        const data = assemblePut(w, g.reads, buffers);
                        const expected = Buffer.concat(
                            w.pieces.map((p) => log.subarray(p.logOffset, p.logOffset + p.length)),
                        );
                        expect(data.equals(expected)).toBe(true);
                    }
                }
            }),
            { numRuns: 40 },
        );
    });

    it('reads a sequential log as ranges of at least the target size', () => {
        const calls = planPageWrites(
            resolveLastWriterWins([{ diskOffset: 0, length: 64 * 1024 * 1024, logOffset: 4096 }]),
        );
        const groups = planReadGroups(calls);
        expect(groups).toHaveLength(8);
        for (const g of groups) {
            expect(g.reads).toHaveLength(1);
            expect(g.reads[0]!.length).toBe(8 * 1024 * 1024);
        }
    });
});
