/**
 * What one Azure Storage REST request is, read from its method, path, query and a few headers only (never the
 * body, except a table batch's sub-operation count, which the counter reads as the body passes). The kinds are the
 * REST operations the price pages map to transaction classes (bench/cost/prices.ts does that mapping).
 *
 * Paths are path-style, as Azurite serves them: `/<account>/<container>/<blob>`, `/<account>/<queue>/messages/<id>`,
 * `/<account>/<table>(PartitionKey='p',RowKey='r')`, `/<account>/$batch`.
 */

export const STORAGE_SERVICES = ['blob', 'queue', 'table'] as const;
export type StorageService = (typeof STORAGE_SERVICES)[number];

export const STORAGE_OP_KINDS = [
    // Blob service
    'blob.putPage',
    'blob.clearPages',
    'blob.getBlob',
    'blob.getBlobRange',
    'blob.getPageRanges',
    'blob.getPageRangesDiff',
    'blob.snapshot',
    'blob.putBlob',
    'blob.putBlock',
    'blob.putBlockList',
    'blob.getBlockList',
    'blob.copyBlob',
    'blob.getProperties',
    'blob.setProperties',
    'blob.getMetadata',
    'blob.setMetadata',
    'blob.tags',
    'blob.lease',
    'blob.deleteBlob',
    'blob.createContainer',
    'blob.deleteContainer',
    'blob.containerProperties',
    'blob.containerLease',
    'blob.listBlobs',
    'blob.listContainers',
    'blob.service',
    'blob.batch',
    'blob.other',
    // Queue service
    'queue.putMessage',
    'queue.getMessages',
    'queue.peekMessages',
    'queue.deleteMessage',
    'queue.updateMessage',
    'queue.clearMessages',
    'queue.createQueue',
    'queue.deleteQueue',
    'queue.queueMetadata',
    'queue.listQueues',
    'queue.service',
    'queue.other',
    // Table service
    'table.query',
    'table.pointRead',
    'table.insert',
    'table.update',
    'table.merge',
    'table.delete',
    'table.batch',
    'table.createTable',
    'table.deleteTable',
    'table.queryTables',
    'table.service',
    'table.other',
] as const;
export type StorageOpKind = (typeof STORAGE_OP_KINDS)[number];

export interface StorageRequestShape {
    service: StorageService;
    method: string;
    /** The raw request target: path and query, as sent. */
    url: string;
    headers: Record<string, string | string[] | undefined>;
}

function header(headers: StorageRequestShape['headers'], name: string): string | undefined {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
}

/** The path's segments after the account, percent-decoded. */
function pathSegments(url: string): { segments: string[]; query: URLSearchParams } {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const segments = path
        .split('/')
        .filter((s) => s !== '')
        .map((s) => {
            try {
                return decodeURIComponent(s);
            } catch {
                return s;
            }
        });
    return { segments: segments.slice(1), query };
}

function blobKind(
    method: string,
    segments: string[],
    query: URLSearchParams,
    h: StorageRequestShape['headers'],
): StorageOpKind {
    const comp = query.get('comp') ?? '';
    const restype = query.get('restype') ?? '';
    if (comp === 'batch') return 'blob.batch';
    if (segments.length === 0) {
        if (comp === 'list') return 'blob.listContainers';
        return 'blob.service';
    }
    if (segments.length === 1 || restype === 'container') {
        if (comp === 'list') return 'blob.listBlobs';
        if (comp === 'lease') return 'blob.containerLease';
        if (restype === 'container' && comp === '') {
            if (method === 'PUT') return 'blob.createContainer';
            if (method === 'DELETE') return 'blob.deleteContainer';
        }
        return 'blob.containerProperties';
    }
    switch (method) {
        case 'PUT':
            if (comp === 'page') {
                return (header(h, 'x-ms-page-write') ?? '').toLowerCase() === 'clear'
                    ? 'blob.clearPages'
                    : 'blob.putPage';
            }
            if (comp === 'block') return 'blob.putBlock';
            if (comp === 'blocklist') return 'blob.putBlockList';
            if (comp === 'snapshot') return 'blob.snapshot';
            if (comp === 'lease') return 'blob.lease';
            if (comp === 'metadata') return 'blob.setMetadata';
            if (comp === 'tags') return 'blob.tags';
            if (comp === 'properties' || comp === 'tier' || comp === 'immutabilityPolicies' || comp === 'legalhold') {
                return 'blob.setProperties';
            }
            if (comp === '' && header(h, 'x-ms-copy-source') !== undefined) return 'blob.copyBlob';
            if (comp === '') return 'blob.putBlob';
            return 'blob.other';
        case 'GET':
            if (comp === 'pagelist') {
                return query.has('prevsnapshot') || header(h, 'x-ms-previous-snapshot-url') !== undefined
                    ? 'blob.getPageRangesDiff'
                    : 'blob.getPageRanges';
            }
            if (comp === 'blocklist') return 'blob.getBlockList';
            if (comp === 'metadata') return 'blob.getMetadata';
            if (comp === 'tags') return 'blob.tags';
            if (comp === '') {
                return header(h, 'x-ms-range') !== undefined || header(h, 'range') !== undefined
                    ? 'blob.getBlobRange'
                    : 'blob.getBlob';
            }
            return 'blob.other';
        case 'HEAD':
            return comp === 'metadata' ? 'blob.getMetadata' : 'blob.getProperties';
        case 'DELETE':
            return comp === '' ? 'blob.deleteBlob' : 'blob.other';
        default:
            return 'blob.other';
    }
}

function queueKind(method: string, segments: string[], query: URLSearchParams): StorageOpKind {
    const comp = query.get('comp') ?? '';
    if (segments.length === 0) return comp === 'list' ? 'queue.listQueues' : 'queue.service';
    if (segments.length === 1) {
        if (comp === '' && method === 'PUT') return 'queue.createQueue';
        if (comp === '' && method === 'DELETE') return 'queue.deleteQueue';
        return 'queue.queueMetadata';
    }
    if (segments[1] !== 'messages') return 'queue.other';
    if (segments.length === 2) {
        if (method === 'POST') return 'queue.putMessage';
        if (method === 'GET')
            return (query.get('peekonly') ?? '').toLowerCase() === 'true' ? 'queue.peekMessages' : 'queue.getMessages';
        if (method === 'DELETE') return 'queue.clearMessages';
        return 'queue.other';
    }
    if (method === 'DELETE') return 'queue.deleteMessage';
    if (method === 'PUT') return 'queue.updateMessage';
    return 'queue.other';
}

function tableKind(method: string, segments: string[], h: StorageRequestShape['headers']): StorageOpKind {
    if (segments.length === 0) return 'table.service';
    const first = segments[0]!;
    if (first === '$batch') return 'table.batch';
    if (first === 'Tables' || first.startsWith('Tables(')) {
        if (method === 'POST') return 'table.createTable';
        if (method === 'DELETE') return 'table.deleteTable';
        if (method === 'GET') return 'table.queryTables';
        return 'table.other';
    }
    const paren = first.indexOf('(');
    const keys = paren < 0 ? '' : first.slice(paren + 1, first.lastIndexOf(')'));
    const isEntity = /PartitionKey=/.test(keys) && /RowKey=/.test(keys);
    const verb = (header(h, 'x-http-method') ?? method).toUpperCase();
    if (!isEntity) {
        if (verb === 'GET') return 'table.query';
        if (verb === 'POST') return 'table.insert';
        return 'table.other';
    }
    switch (verb) {
        case 'GET':
            return 'table.pointRead';
        case 'PUT':
            return 'table.update';
        case 'MERGE':
        case 'PATCH':
            return 'table.merge';
        case 'DELETE':
            return 'table.delete';
        default:
            return 'table.other';
    }
}

/** The REST operation a request is. Pure: method, path, query and headers only. */
export function classifyStorageRequest(req: StorageRequestShape): StorageOpKind {
    const { segments, query } = pathSegments(req.url);
    const method = req.method.toUpperCase();
    switch (req.service) {
        case 'blob':
            return blobKind(method, segments, query, req.headers);
        case 'queue':
            return queueKind(method, segments, query);
        case 'table':
            return tableKind(method, segments, req.headers);
    }
}

/**
 * Counts the sub-operations in a table batch body as it streams past: each one is a request line
 * (`POST|PUT|PATCH|MERGE|DELETE|GET <url> HTTP/1.1`) inside the multipart change set. A line may be split across
 * chunks, so the unfinished tail is carried over.
 */
export class BatchOperationCounter {
    private tail = '';
    count = 0;

    push(chunk: Buffer): void {
        const text = this.tail + chunk.toString('latin1');
        const lines = text.split('\n');
        this.tail = lines.pop() ?? '';
        if (this.tail.length > 8192) this.tail = this.tail.slice(-8192);
        for (const line of lines) this.countLine(line);
    }

    finish(): number {
        if (this.tail !== '') this.countLine(this.tail);
        this.tail = '';
        return this.count;
    }

    private countLine(line: string): void {
        if (/^(POST|PUT|PATCH|MERGE|DELETE|GET) \S+ HTTP\/1\.[01]\r?$/.test(line)) this.count++;
    }
}
