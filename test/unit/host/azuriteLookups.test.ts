import { dirname } from 'node:path';
import { runInThisContext } from 'node:vm';
import { AZURITE_LOOKUPS } from '../../../packages/functions-local/src';

/* eslint-disable @typescript-eslint/no-require-imports */
type Doc = Record<string, unknown>;
interface Collection {
    insert(doc: Doc): Doc;
    findOne(q: Doc): Doc | null;
    count(q: Doc): number;
    findAndRemove(q: Doc): void;
    find(q: Doc): Doc[];
    ensureAllIndexes(force?: boolean): void;
}
interface LokiModule {
    new (name: string): { addCollection(name: string, options: Doc): Collection };
    LokiOps: Record<string, (a: unknown, b: unknown) => boolean>;
}

/** LokiJS as Azurite loads it, with the lookups installed the way the Azurite child installs them. */
function lokiWithLookups(): { Loki: LokiModule; said: string[] } {
    jest.resetModules();
    const azurite = require.resolve('azurite/dist/src/azurite.js');
    const lokiPath = require.resolve('lokijs', { paths: [dirname(azurite)] });
    const said: string[] = [];
    const install = runInThisContext(`(function (require, process, console) {\n${AZURITE_LOOKUPS}\n})`) as (
        ...args: unknown[]
    ) => void;
    install(
        require,
        { argv: ['node', azurite] },
        {
            log: (line: string) => said.push(line),
        },
    );
    return { Loki: require(lokiPath) as LokiModule, said };
}

/** A blobs collection as Azurite's LokiBlobMetadataStore makes it: 2 containers × 500 blobs, one with 3 snapshots. */
function blobs(Loki: LokiModule): Collection {
    const coll = new Loki('t').addCollection('$BLOBS_COLLECTION$', {
        indices: ['accountName', 'containerName', 'name', 'snapshot'],
    });
    for (const containerName of ['a', 'b']) {
        for (let i = 0; i < 500; i++)
            coll.insert({ accountName: 'dev', containerName, name: `disk-${i}`, snapshot: '' });
    }
    for (const snapshot of ['s1', 's2', 's3'])
        coll.insert({ accountName: 'dev', containerName: 'a', name: 'disk-7', snapshot });
    return coll;
}

describe("the Azurite child's blob lookups by name", () => {
    it('install for the LokiJS version checked and say so', () => {
        expect(lokiWithLookups().said).toEqual(['HVR lookups indexed (lokijs 1.5.12)']);
    });

    it("find a blob through the name's index: a few comparisons, not one per blob", () => {
        const { Loki } = lokiWithLookups();
        const coll = blobs(Loki);
        const eq = Loki.LokiOps.$eq!;
        let compared = 0;
        Loki.LokiOps.$eq = (a, b) => {
            compared++;
            return eq(a, b);
        };
        try {
            const doc = coll.findOne({ accountName: 'dev', containerName: 'b', name: 'disk-7', snapshot: '' });
            expect(doc).toMatchObject({ containerName: 'b', name: 'disk-7', snapshot: '' });
            expect(
                coll.findOne({ accountName: 'dev', containerName: 'a', name: 'disk-7', snapshot: 's2' }),
            ).toMatchObject({ snapshot: 's2' });
            expect(coll.findOne({ accountName: 'dev', containerName: 'a', name: 'nope', snapshot: '' })).toBeNull();
            expect(coll.count({ accountName: 'dev', containerName: 'a', name: 'disk-7' })).toBe(4);
            expect(compared).toBeLessThan(40);
        } finally {
            Loki.LokiOps.$eq = eq;
        }
    });

    it('delete one snapshot, then a base blob, without rebuilding the indexes, and leave the rest findable', () => {
        const { Loki } = lokiWithLookups();
        const coll = blobs(Loki);
        coll.findOne({ accountName: 'dev', containerName: 'a', name: 'disk-1', snapshot: '' }); // indexes built
        const rebuild = jest.spyOn(coll, 'ensureAllIndexes');
        coll.findAndRemove({ accountName: 'dev', containerName: 'a', name: 'disk-7', snapshot: 's2' });
        coll.findAndRemove({ accountName: 'dev', containerName: 'b', name: 'disk-9' });
        expect(rebuild).not.toHaveBeenCalled();
        expect(
            coll
                .find({ accountName: 'dev', containerName: 'a', name: 'disk-7' })
                .map((d) => d.snapshot)
                .sort(),
        ).toEqual(['', 's1', 's3']);
        expect(coll.findOne({ accountName: 'dev', containerName: 'b', name: 'disk-9', snapshot: '' })).toBeNull();
        expect(coll.findOne({ accountName: 'dev', containerName: 'a', name: 'disk-9', snapshot: '' })).not.toBeNull();
        for (let i = 0; i < 500; i += 37) {
            expect(
                coll.findOne({ accountName: 'dev', containerName: 'b', name: `disk-${i}`, snapshot: '' }) !== null,
            ).toBe(i !== 9);
        }
    });

    it('leave other queries as they are: a snapshot range, a container listing', () => {
        const { Loki } = lokiWithLookups();
        const coll = blobs(Loki);
        coll.findAndRemove({ accountName: 'dev', containerName: 'a', name: 'disk-7', snapshot: { $gt: '' } });
        expect(coll.count({ accountName: 'dev', containerName: 'a', name: 'disk-7' })).toBe(1);
        expect(coll.find({ accountName: 'dev', containerName: 'a' })).toHaveLength(500);
    });
});
