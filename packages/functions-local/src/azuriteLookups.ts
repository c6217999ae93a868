/**
 * Azurite's blob lookups through its own indexes. Azurite 3.35 keeps blob metadata in LokiJS, which uses an index
 * for the first key of a query only; Azurite's queries lead with the account (one account, so every blob
 * matches) and scan the rest, and every delete rebuilds the collection's four indexes. Both grow with what the
 * emulator holds: in a 200-VM, 3-cycle scale run they were 17 % of its busy time (the blob find 10 %, the
 * rebuilds on delete 7 %; profiled with HVR_AZURITE_NODE_ARGS=--cpu-prof), and Azure Storage's cost per call does not
 * grow with the account.
 *
 * This script runs in the Azurite child before Azurite. For the version it was checked against it makes a
 * blob's name lead those queries (`name` has an index) and deletes the one or few documents a delete matches
 * one at a time (LokiJS then updates its indexes in place instead of rebuilding them); the documents found and
 * removed are the same. Queries that could return several documents in an order (findOne without the snapshot,
 * find, listings) are left alone. For another LokiJS version it does nothing and says so: the child prints one
 * `HVR lookups` line either way, which `startAzurite` reads into `RunningAzurite.lookups`.
 */
export const AZURITE_LOOKUPS = [
    'try {',
    "    const path = require('path');",
    '    const from = { paths: [path.dirname(process.argv[1])] };',
    "    const version = require(require.resolve('lokijs/package.json', from)).version;",
    `    if (version !== ${JSON.stringify('1.5.12')}) {`,
    "        console.log('HVR lookups plain (lokijs ' + version + ' is not the version checked)');",
    '    } else {',
    "        const C = require(require.resolve('lokijs', from)).Collection.prototype;",
    "        const scalar = (v) => v === null || typeof v !== 'object';",
    '        const keysOf = (q) => (q && typeof q === "object" && !Array.isArray(q) ? Object.keys(q) : []);',
    // A query on a blob's account, container and name (and maybe snapshot), every value a plain one.
    '        const byName = (coll, q) => {',
    '            const keys = keysOf(q);',
    "            if (!coll.binaryIndices.name || !keys.every((k) => ['accountName', 'containerName', 'name', 'snapshot'].includes(k) && scalar(q[k]))) return undefined;",
    "            if (!['accountName', 'containerName', 'name'].every((k) => keys.includes(k))) return undefined;",
    '            const led = { name: q.name };',
    '            for (const k of keys) if (k !== "name") led[k] = q[k];',
    '            return led;',
    '        };',
    '        const findOne = C.findOne, count = C.count, findAndRemove = C.findAndRemove;',
    // One document at most matches all four keys, so which comes first cannot differ.
    '        C.findOne = function (q) {',
    '            const led = keysOf(q).length === 4 ? byName(this, q) : undefined;',
    '            return findOne.call(this, led ?? q);',
    '        };',
    '        C.count = function (q) {',
    '            return count.call(this, byName(this, q) ?? q);',
    '        };',
    '        C.findAndRemove = function (q) {',
    '            const led = byName(this, q);',
    '            if (!led) return findAndRemove.call(this, q);',
    '            const docs = this.find(led);',
    '            if (docs.length > 16) return findAndRemove.call(this, led);',
    '            for (const doc of docs) this.remove(doc);',
    '        };',
    "        console.log('HVR lookups indexed (lokijs ' + version + ')');",
    '    }',
    '} catch (err) {',
    "    console.log('HVR lookups plain (' + String(err && err.message) + ')');",
    '}',
].join('\n');
