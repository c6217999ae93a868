/** The Azurite and LokiJS versions the lookups and saves below were checked against. */
export const AZURITE_LOOKUPS_CHECKED = { azurite: '3.35.0', lokijs: '1.5.12' } as const;

/** A save may take at most one part in this many of Azurite's time (its next one waits that much longer). */
export const SAVE_SHARE_INVERSE = 10;
/** The longest wait between two saves of a changed database: what an Azurite killed without its close loses. */
export const MAX_SAVE_DELAY_MS = 60_000;

/**
 * Azurite's lookups through its own indexes. Azurite keeps blob and table metadata in LokiJS, which uses an index
 * for the first key of a query only. Azurite's blob queries lead with the account (one account, so every blob
 * matches) and scan the rest, every blob delete rebuilds the collection's four indexes, and a table query runs
 * its interpreted filter over every entity of the table, not the partition it names. All grow with what the
 * emulator holds: in a 200-VM, 3-cycle scale run the blob find and the rebuilds were 17 % of its busy time
 * (profiled with HVR_AZURITE_NODE_ARGS=--cpu-prof), and Azure Storage's cost per call does not grow with the
 * account.
 *
 * This script runs in the Azurite child before Azurite. For the versions it was checked against:
 * - a lookup of one blob or snapshot (account, container, name and snapshot, plain values) leads with the blob's
 *   name, which has an index; counts and deletes by name too;
 * - a delete removes the few documents it matches one by one, so LokiJS updates its indexes in place;
 * - a table query whose filter is a conjunction (no `or`, no `not`) with a `PartitionKey eq '…'` term first keeps
 *   the entities of that partition (a plain string comparison), then runs the filter on those;
 * - LokiJS's autosave, which serializes the whole database (Azurite: every 5 s while anything changed), waits
 *   after each save at least SAVE_SHARE_INVERSE times as long as that save took, and at most MAX_SAVE_DELAY_MS:
 *   a soak's blob database holds every retained snapshot's page ranges (181 MB after 30 minutes of 4 × 2 at
 *   2 MiB/s), and then its saves were 61 % of Azurite's time. Closing Azurite still saves what changed.
 * What is found, counted, removed and returned, and in what order, is the same: each step only narrows what the
 * unchanged query then looks at. Queries that could return several documents in an index's order (findOne
 * without the snapshot, blob listings) are left alone. For other versions it does nothing and says so: the child
 * prints one `HVR lookups` line either way, which `startAzurite` reads into `RunningAzurite.lookups`.
 */
export const AZURITE_LOOKUPS = `
try {
    const path = require('path');
    const root = path.dirname(process.argv[1]);
    const from = { paths: [root] };
    const lokiVersion = require(require.resolve('lokijs/package.json', from)).version;
    const azuriteVersion = require(path.join(root, '..', '..', 'package.json')).version;
    if (lokiVersion !== '${AZURITE_LOOKUPS_CHECKED.lokijs}' || azuriteVersion !== '${AZURITE_LOOKUPS_CHECKED.azurite}') {
        console.log('HVR lookups plain (azurite ' + azuriteVersion + ', lokijs ' + lokiVersion + ': not the versions checked)');
    } else {
        const Loki = require(require.resolve('lokijs', from));
        const C = Loki.Collection.prototype;
        const R = Loki.Resultset.prototype;
        const scalar = (v) => v === null || typeof v !== 'object';
        const keysOf = (q) => (q && typeof q === 'object' && !Array.isArray(q) ? Object.keys(q) : []);
        const BLOB_KEYS = ['accountName', 'containerName', 'name', 'snapshot'];
        // A query on a blob's account, container and name (and maybe snapshot), plain values: the name first.
        const byName = (coll, q) => {
            const keys = keysOf(q);
            if (!coll.binaryIndices.name || !keys.every((k) => BLOB_KEYS.includes(k) && scalar(q[k]))) return undefined;
            if (!BLOB_KEYS.slice(0, 3).every((k) => keys.includes(k))) return undefined;
            const led = { name: q.name };
            for (const k of keys) if (k !== 'name') led[k] = q[k];
            return led;
        };
        const findOne = C.findOne, count = C.count, findAndRemove = C.findAndRemove;
        // At most one document matches all four keys, so which comes first cannot differ.
        C.findOne = function (q) {
            const led = keysOf(q).length === 4 ? byName(this, q) : undefined;
            return findOne.call(this, led || q);
        };
        C.count = function (q) {
            return count.call(this, byName(this, q) || q);
        };
        C.findAndRemove = function (q) {
            const led = byName(this, q);
            if (!led) return findAndRemove.call(this, q);
            const docs = this.find(led);
            if (docs.length > 16) return findAndRemove.call(this, led);
            for (const doc of docs) this.remove(doc);
        };

        // Table queries: the partition a conjunctive filter names, by a string comparison, before the filter.
        const partitionOf = (filter) => {
            if (typeof filter !== 'string') return undefined;
            const literals = [];
            const bare = filter.replace(/'((?:[^']|'')*)'/g, (_, s) => "'" + (literals.push(s.replace(/''/g, "'")) - 1) + "'");
            if (/'/.test(bare.replace(/'\\d+'/g, '')) || /\\b(or|not)\\b/i.test(bare)) return undefined;
            const m = /^[\\s(]*PartitionKey\\s+eq\\s+'(\\d+)'/.exec(bare);
            return m ? literals[Number(m[1])] : undefined;
        };
        const Generator = require(path.join(root, 'table', 'persistence', 'LokiTableStoreQueryGenerator.js')).default;
        const generate = Generator.generateQueryForPersistenceLayer;
        Generator.generateQueryForPersistenceLayer = function (queryOptions, context) {
            const where = generate.call(this, queryOptions, context);
            const partitionKey = partitionOf(queryOptions && queryOptions.filter);
            if (partitionKey === undefined || typeof where !== 'function') return where;
            const narrowed = (entity) => where(entity);
            narrowed.hvrPartitionKey = partitionKey;
            return narrowed;
        };
        const where = R.where;
        R.where = function (fun) {
            if (typeof fun === 'function' && typeof fun.hvrPartitionKey === 'string' && !this.filterInitialized) {
                const data = this.collection.data;
                const rows = [];
                for (let k = 0; k < data.length; k++) if (data[k].PartitionKey === fun.hvrPartitionKey) rows.push(k);
                this.filteredrows = rows;
                this.filterInitialized = true;
            }
            return where.call(this, fun);
        };
        // Autosave paced by each save's own time (the last rule above).
        const L = Loki.prototype;
        L.autosaveEnable = function (options, callback) {
            this.autosave = true;
            const self = this;
            const interval = typeof this.autosaveInterval === 'number' ? this.autosaveInterval : 5000;
            const schedule = (delay) => {
                const handle = setTimeout(() => {
                    if (self.autosaveHandle !== handle) return;
                    let next = interval;
                    if (self.autosaveDirty() && !self.ignoreAutosave) {
                        const started = Date.now();
                        self.saveDatabase(callback);
                        self.hvrLastSaveMs = Date.now() - started;
                        next = Math.min(${MAX_SAVE_DELAY_MS}, Math.max(interval, ${SAVE_SHARE_INVERSE} * self.hvrLastSaveMs));
                    }
                    self.hvrNextSaveDelayMs = next;
                    if (self.autosaveHandle === handle) schedule(next);
                }, delay);
                self.autosaveHandle = handle;
            };
            schedule(interval);
        };
        console.log('HVR lookups indexed (azurite ' + azuriteVersion + ', lokijs ' + lokiVersion + ')');
    }
} catch (err) {
    console.log('HVR lookups plain (' + String(err && err.message) + ')');
}
`;
