import { dirname, join } from 'node:path';
import { runInThisContext } from 'node:vm';
import { readFileSync } from 'node:fs';
import { AZURITE_LOOKUPS, MAX_SAVE_DELAY_MS, SAVE_SHARE_INVERSE } from '../../../packages/functions-local/src';

/* eslint-disable @typescript-eslint/no-require-imports */
type Doc = Record<string, unknown>;
interface Collection {
    insert(doc: Doc): Doc;
    findOne(q: Doc): Doc | null;
    count(q: Doc): number;
    findAndRemove(q: Doc): void;
    find(q: Doc): Doc[];
    chain(): { where(fn: (doc: Doc) => boolean): { data(): Doc[] } };
    ensureAllIndexes(force?: boolean): void;
}
interface Generator {
    generateQueryForPersistenceLayer(options: { filter?: string }, context: unknown): (entity: Doc) => boolean;
}
interface LokiModule {
    new (name: string): { addCollection(name: string, options: Doc): Collection };
    LokiOps: Record<string, (a: unknown, b: unknown) => boolean>;
}

/** LokiJS as Azurite loads it, with the lookups installed the way the Azurite child installs them. */
function lokiWithLookups(): { Loki: LokiModule; said: string[]; generator: Generator } {
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
    const generator = (
        require(join(dirname(azurite), 'table', 'persistence', 'LokiTableStoreQueryGenerator.js')) as {
            default: Generator;
        }
    ).default;
    return { Loki: require(lokiPath) as LokiModule, said, generator };
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
        expect(lokiWithLookups().said).toEqual(['HVR lookups indexed (azurite 3.35.0, lokijs 1.5.12)']);
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

    describe('table queries', () => {
        /** 50 partitions of 20 entities as Azurite's table store keeps them, and one partition key with a quote. */
        function entities(Loki: LokiModule): Collection {
            const coll = new Loki('t').addCollection('entities', { indices: ['PartitionKey', 'RowKey'] });
            const add = (PartitionKey: string, RowKey: string, n: number): void => {
                coll.insert({ PartitionKey, RowKey, properties: { PartitionKey, RowKey, n } });
            };
            for (let p = 0; p < 50; p++) for (let r = 0; r < 20; r++) add(`vm-${p}`, `r${r}`, r);
            add("it's", 'r1', 1);
            return coll;
        }
        const keys = (docs: Doc[]): string[] => docs.map((e) => `${e.PartitionKey as string}/${e.RowKey as string}`);

        it('return what the filter over the whole table returns, in the same order', () => {
            const { Loki, generator } = lokiWithLookups();
            const coll = entities(Loki);
            const cases = [
                "PartitionKey eq 'vm-7'",
                "PartitionKey eq 'vm-7' and RowKey ge 'r15'",
                "(PartitionKey eq 'vm-7') and (n lt 3)",
                "PartitionKey eq 'it''s'",
                "PartitionKey eq 'vm-7' or PartitionKey eq 'vm-8'",
                "PartitionKey eq 'vm-7' and RowKey eq 'r1' or PartitionKey eq 'vm-9'",
                "not (PartitionKey eq 'vm-7')",
                "RowKey eq 'r3'",
                "n eq 2 and PartitionKey eq 'vm-3'",
                "PartitionKey eq 'nope'",
            ];
            for (const filter of cases) {
                const where = generator.generateQueryForPersistenceLayer({ filter }, {});
                // A plain wrapper carries no partition: the whole table, as Azurite alone would look at it.
                const whole = keys(
                    coll
                        .chain()
                        .where((e) => where(e))
                        .data(),
                );
                expect([filter, keys(coll.chain().where(where).data())]).toEqual([filter, whole]);
            }
            const only = (filter: string): string[] =>
                keys(coll.chain().where(generator.generateQueryForPersistenceLayer({ filter }, {})).data());
            expect(only("PartitionKey eq 'it''s'")).toEqual(["it's/r1"]);
            expect(only("PartitionKey eq 'vm-7' or PartitionKey eq 'vm-8'")).toHaveLength(40);
            expect(only("PartitionKey eq 'vm-7' and RowKey eq 'r1' or PartitionKey eq 'vm-9'")).toHaveLength(21);
        });

        it('look at the partition only: its 20 entities, not the 1,001 of the table', () => {
            const { Loki, generator } = lokiWithLookups();
            const coll = entities(Loki);
            const where = generator.generateQueryForPersistenceLayer(
                { filter: "PartitionKey eq 'vm-7' and n ge 18" },
                {},
            );
            let looked = 0;
            const counted = Object.assign((e: Doc) => {
                looked++;
                return where(e);
            }, where);
            expect(
                coll
                    .chain()
                    .where(counted)
                    .data()
                    .map((e) => e.RowKey),
            ).toEqual(['r19', 'r18']);
            expect(looked).toBe(20);
        });
    });
});

describe("the Azurite child's database saves", () => {
    interface Db {
        addCollection(name: string): { insert(doc: Doc): Doc };
        close(callback?: () => void): void;
        autosaveHandle: unknown;
        hvrNextSaveDelayMs?: number;
    }
    type LokiWithOptions = new (name: string, options: Doc) => Db;
    /** A database that autosaves every 20 ms through an adapter whose save takes `saveMs` of this thread's time. */
    function database(saveMs: number): { db: Db; saves: () => number } {
        const { Loki } = lokiWithLookups();
        let saves = 0;
        const adapter = {
            saveDatabase(_name: string, _data: string, callback: (err?: Error) => void): void {
                saves++;
                const until = Date.now() + saveMs;
                while (Date.now() < until) {
                    /* the serialization's time, on this thread as in LokiJS */
                }
                callback();
            },
        };
        const db = new (Loki as unknown as LokiWithOptions)('t.json', {
            adapter,
            autosave: true,
            autosaveInterval: 20,
        });
        opened.push(db);
        return { db, saves: () => saves };
    }
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const opened: Db[] = [];
    const close = (db: Db) => new Promise<void>((r) => db.close(() => r()));
    afterEach(async () => {
        for (const db of opened.splice(0)) await close(db);
    });
    /** Inserts a document every 5 ms for `ms`: the database is always changed. */
    async function changeFor(db: Db, ms: number): Promise<void> {
        const docs = db.addCollection('c');
        const writes = setInterval(() => docs.insert({ at: Date.now() }), 5);
        try {
            await sleep(ms);
        } finally {
            clearInterval(writes);
        }
    }

    it('wait ten times as long as the last save took before the next, so a large database costs a bounded share', async () => {
        const { db, saves } = database(40);
        await changeFor(db, 1000);
        expect(db.hvrNextSaveDelayMs).toBeGreaterThanOrEqual(SAVE_SHARE_INVERSE * 40);
        // Every 20 ms while dirty would be about 1000 / (20 + 40) = 16 saves.
        expect(saves()).toBeLessThanOrEqual(4);
    });

    it('keep the configured interval while saves are quick', async () => {
        const { db, saves } = database(0);
        await changeFor(db, 300);
        // 20 ms, or ten times a save's few milliseconds on a busy machine.
        expect(db.hvrNextSaveDelayMs).toBeLessThanOrEqual(200);
        expect(saves()).toBeGreaterThanOrEqual(3);
    });

    it('wait at most a minute, however long a save took', async () => {
        const { db } = database(0);
        db.addCollection('c').insert({ n: 1 });
        const now = Date.now();
        let calls = 0;
        // The child's script runs in this process's own context (as the lookups do), whose Date is not the test's.
        const clock = jest
            .spyOn(runInThisContext('Date') as DateConstructor, 'now')
            .mockImplementation(() => now + calls++ * 600_000);
        try {
            await sleep(60);
        } finally {
            clock.mockRestore();
        }
        expect(db.hvrNextSaveDelayMs).toBe(MAX_SAVE_DELAY_MS);
    });

    it("are what the package's README says", () => {
        const readme = readFileSync(join(__dirname, '../../../packages/functions-local/README.md'), 'utf8');
        expect(readme).toContain(`\`SAVE_SHARE_INVERSE\` (${SAVE_SHARE_INVERSE})`);
        expect(readme).toContain(`\`MAX_SAVE_DELAY_MS\` (${MAX_SAVE_DELAY_MS / 1000} s)`);
    });

    it('save what changed on close and stop the timer', async () => {
        const { db, saves } = database(40);
        const docs = db.addCollection('c');
        docs.insert({ n: 1 });
        await sleep(100);
        const before = saves();
        expect(before).toBeGreaterThanOrEqual(1);
        docs.insert({ n: 2 });
        await close(db);
        expect(saves()).toBe(before + 1);
        expect(db.autosaveHandle).toBeNull();
        docs.insert({ n: 3 });
        await sleep(600);
        expect(saves()).toBe(before + 1);
    });
});
