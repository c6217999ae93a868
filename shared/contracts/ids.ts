import { HvrError } from '../errors';

/**
 * The one rule for every id a provider or an operator names (site, VM, disk, provider, cycle, request, resync):
 * ids end up in blob paths (`{siteId}/{vmId}/{diskId}/…`), table keys and Service Bus session ids
 * (`site:{siteId}`), so they are plain: 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or digit
 * and not ending in `.` (Windows drops a trailing dot from a file name, which would make two ids one file).
 * The API, the command handler, the merge and the JSON Schemas all use this; docs/provider-contract.md
 * restates it and a test checks the restatement.
 */
export const ID_MAX_LENGTH = 64;

/** ID rule as a JSON Schema / ECMAScript pattern (no flags). */
export const ID_PATTERN = `^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,${ID_MAX_LENGTH - 2}}[A-Za-z0-9_-])?$`;

/** The rule in words, as error messages name it. */
export const ID_RULE = `1–${ID_MAX_LENGTH} letters, digits, ".", "_" or "-", starting with a letter or digit and not ending in "."`;

const ID = new RegExp(ID_PATTERN);

export function isContractId(value: unknown): boolean {
    return typeof value === 'string' && ID.test(value);
}

/** `value` if it follows the id rule; VALIDATION_FAILED naming the field, the value and the rule otherwise. */
export function requireContractId(field: string, value: unknown): string {
    if (typeof value === 'string' && isContractId(value)) return value;
    const shown =
        typeof value === 'string' && value.length > 80 ? `${value.slice(0, 80)}… (${value.length} characters)` : value;
    throw new HvrError('VALIDATION_FAILED', `${field} must be ${ID_RULE}; got ${JSON.stringify(shown) ?? 'nothing'}.`, {
        field,
        rule: 'ID_PATTERN',
        pattern: ID_PATTERN,
    });
}

/**
 * A log's id is its MS-HRL header UniqueId: a GUID in its 8-4-4-4-12 text form, either case (the pipeline
 * compares and names blobs in lower case).
 */
export const LOG_ID_PATTERN = '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$';

/**
 * The cycle id the last initial-replication log of every disk carries in its `cycleid` metadata: once every
 * disk has merged it, the VM has its first recovery point and initial replication is complete.
 */
export const INITIAL_REPLICATION_CYCLE_ID = 'initial';

/** An instant as the contract writes one: ISO 8601 in UTC with `Z`, whole seconds or up to 9 decimals. */
export const INSTANT_PATTERN = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]{1,9})?Z$';
