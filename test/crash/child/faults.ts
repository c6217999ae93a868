// Fault injection for the crash suite, loaded into the merge host's process with `-r` (after register.js): it
// wraps the storage SDKs' calls and kills the process (SIGKILL: no cleanup, no settlement) at the step CRASH_AT
// names.
//   before-intent      the row update that records the write intent is about to be sent
//   after-pages:K      K page calls (Put Page / Clear Pages) of the merge have succeeded
//   after-seal         the replica's sequence number was set to n
//   before-row         the row update that records log n is about to be sent
//   before-delete      the row says n, the log blob is about to be deleted
// CRASH_PUT_DELAY_MS slows each page call down, so a small log spans several time budgets.
import { TableClient } from '@azure/data-tables';
import { BlobClient, PageBlobClient } from '@azure/storage-blob';

const at = process.env.CRASH_AT ?? '';
const delayMs = Number(process.env.CRASH_PUT_DELAY_MS ?? 0);

function die(why: string): void {
    process.stdout.write(`CRASH ${why} ${Date.now()}\n`);
    process.kill(process.pid, 'SIGKILL');
}

type AnyMethod = (this: unknown, ...args: unknown[]) => Promise<unknown>;
function wrap<T extends object>(proto: T, method: string, around: (original: AnyMethod) => AnyMethod): void {
    const table = proto as unknown as Record<string, AnyMethod>;
    table[method] = around(table[method]!);
}

let pages = 0;
const pagesLimit = at.startsWith('after-pages:') ? Number(at.slice('after-pages:'.length)) : Infinity;
for (const method of ['uploadPages', 'clearPages']) {
    wrap(
        PageBlobClient.prototype,
        method,
        (original) =>
            async function (this: unknown, ...args: unknown[]) {
                if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
                const result = await original.apply(this, args);
                if (++pages >= pagesLimit) die(`after ${pages} page calls`);
                return result;
            },
    );
}

wrap(
    PageBlobClient.prototype,
    'updateSequenceNumber',
    (original) =>
        async function (this: unknown, ...args: unknown[]) {
            const result = await original.apply(this, args);
            if (at === 'after-seal') die('after the seal');
            return result;
        },
);

wrap(
    TableClient.prototype,
    'updateEntity',
    (original) =>
        async function (this: unknown, ...args: unknown[]) {
            const entity = args[0] as Record<string, unknown>;
            if ((this as TableClient).tableName.endsWith('ReplicaDisks')) {
                if (at === 'before-intent' && entity.applyingSequence !== undefined && entity.applyingStep === 0) {
                    die('before the intent');
                }
                if (
                    at === 'before-row' &&
                    entity.applyingSequence === undefined &&
                    entity.lastAppliedAt !== undefined
                ) {
                    die('before the row');
                }
            }
            return original.apply(this, args);
        },
);

wrap(
    BlobClient.prototype,
    'deleteIfExists',
    (original) =>
        async function (this: unknown, ...args: unknown[]) {
            if (at === 'before-delete' && (this as BlobClient).containerName === 'replica-logs') {
                die('before the log is deleted');
            }
            return original.apply(this, args);
        },
);
