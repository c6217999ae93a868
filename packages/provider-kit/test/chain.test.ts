import { bufferSource, readHrlIndex } from '../../../shared/hrl';
import { DiskChain, DiskChainState, NIL_GUID } from '../src';

describe('DiskChain', () => {
    it('numbers logs from 1, chains PreviousUniqueId to the last UniqueId and keeps one Vhd2DataWriteGuid', async () => {
        const chain = new DiskChain('os');
        const at = new Date('2026-01-01T00:00:00Z');
        const first = chain.buildLog([{ diskOffset: 0, data: Buffer.alloc(512, 1) }], at);
        const second = chain.buildLog([{ diskOffset: 4096, data: Buffer.alloc(1024, 2) }], at);
        expect([first.sequence, second.sequence]).toEqual([1, 2]);
        const h1 = (await readHrlIndex(bufferSource(first.log))).header;
        const h2 = (await readHrlIndex(bufferSource(second.log))).header;
        expect(h1.uniqueId).toBe(first.logId);
        expect(h1.previousUniqueId).toBe(NIL_GUID);
        expect(h2.uniqueId).toBe(second.logId);
        expect(h2.previousUniqueId).toBe(first.logId);
        expect(h2.vhd2DataWriteGuid).toBe(h1.vhd2DataWriteGuid);
        expect(h1.vhd2DataWriteGuid).toBe(chain.vhd2DataWriteGuid);
        expect(second.dataBytes).toBe(1024);
    });

    it('resumes from its snapshot: the next log continues the chain where the last one left it', async () => {
        const chain = new DiskChain('data1');
        const last = chain.buildLog([{ diskOffset: 0, data: Buffer.alloc(512) }], new Date());
        const resumed = new DiskChain('data1', {
            resume: JSON.parse(JSON.stringify(chain.snapshot())) as DiskChainState,
        });
        const next = resumed.buildLog([{ diskOffset: 512, data: Buffer.alloc(512, 9) }], new Date());
        const header = (await readHrlIndex(bufferSource(next.log))).header;
        expect(next.sequence).toBe(2);
        expect(header.previousUniqueId).toBe(last.logId);
        expect(header.vhd2DataWriteGuid).toBe(chain.vhd2DataWriteGuid);
        expect(() => new DiskChain('other', { resume: chain.snapshot() })).toThrow(/cannot resume/);
    });

    it('takes the position a resync names and starts a new chain there', async () => {
        const chain = new DiskChain('os');
        chain.buildLog([{ diskOffset: 0, data: Buffer.alloc(512) }], new Date());
        chain.moveTo(7);
        const log = chain.buildLog([{ diskOffset: 0, data: Buffer.alloc(512) }], new Date(), { newChain: true });
        expect(log.sequence).toBe(7);
        expect((await readHrlIndex(bufferSource(log.log))).header.previousUniqueId).toBe(NIL_GUID);
        expect(() => chain.moveTo(0)).toThrow(RangeError);
    });
});
