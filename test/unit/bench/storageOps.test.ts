import {
    BatchOperationCounter,
    classifyStorageRequest,
    type StorageOpKind,
    type StorageService,
} from '../../../bench/support/storageOps';

const A = '/devstoreaccount1';

type Row = [StorageService, string, string, Record<string, string>, StorageOpKind];

const rows: Row[] = [
    ['blob', 'PUT', `${A}/c/d.vhd?comp=page`, { 'x-ms-page-write': 'update' }, 'blob.putPage'],
    ['blob', 'PUT', `${A}/c/d.vhd?comp=page`, { 'x-ms-page-write': 'clear' }, 'blob.clearPages'],
    ['blob', 'GET', `${A}/c/d.vhd`, { 'x-ms-range': 'bytes=0-511' }, 'blob.getBlobRange'],
    ['blob', 'GET', `${A}/c/d.vhd`, {}, 'blob.getBlob'],
    ['blob', 'GET', `${A}/c/d.vhd?comp=pagelist`, {}, 'blob.getPageRanges'],
    ['blob', 'GET', `${A}/c/d.vhd?comp=pagelist&prevsnapshot=2026-01-01T00%3A00%3A00Z`, {}, 'blob.getPageRangesDiff'],
    ['blob', 'PUT', `${A}/c/d.vhd?comp=snapshot`, {}, 'blob.snapshot'],
    ['blob', 'PUT', `${A}/c/log.hrl`, { 'x-ms-blob-type': 'BlockBlob' }, 'blob.putBlob'],
    ['blob', 'PUT', `${A}/c/log.hrl?comp=block&blockid=AAAA`, {}, 'blob.putBlock'],
    ['blob', 'PUT', `${A}/c/log.hrl?comp=blocklist`, {}, 'blob.putBlockList'],
    ['blob', 'PUT', `${A}/c/copy`, { 'x-ms-copy-source': 'http://x/y' }, 'blob.copyBlob'],
    ['blob', 'HEAD', `${A}/c/d.vhd`, {}, 'blob.getProperties'],
    ['blob', 'PUT', `${A}/c/d.vhd?comp=properties`, {}, 'blob.setProperties'],
    ['blob', 'PUT', `${A}/c/d.vhd?comp=metadata`, {}, 'blob.setMetadata'],
    ['blob', 'PUT', `${A}/c/d.vhd?comp=lease`, {}, 'blob.lease'],
    ['blob', 'DELETE', `${A}/c/d.vhd`, {}, 'blob.deleteBlob'],
    ['blob', 'PUT', `${A}/c?restype=container`, {}, 'blob.createContainer'],
    ['blob', 'DELETE', `${A}/c?restype=container`, {}, 'blob.deleteContainer'],
    ['blob', 'GET', `${A}/c?restype=container`, {}, 'blob.containerProperties'],
    ['blob', 'PUT', `${A}/c?restype=container&comp=lease`, {}, 'blob.containerLease'],
    ['blob', 'GET', `${A}/c?restype=container&comp=list&prefix=a`, {}, 'blob.listBlobs'],
    ['blob', 'GET', `${A}?comp=list`, {}, 'blob.listContainers'],
    ['queue', 'POST', `${A}/q/messages`, {}, 'queue.putMessage'],
    ['queue', 'GET', `${A}/q/messages?numofmessages=32&visibilitytimeout=30`, {}, 'queue.getMessages'],
    ['queue', 'GET', `${A}/q/messages?peekonly=true`, {}, 'queue.peekMessages'],
    ['queue', 'DELETE', `${A}/q/messages/abc?popreceipt=x`, {}, 'queue.deleteMessage'],
    ['queue', 'PUT', `${A}/q/messages/abc?popreceipt=x&visibilitytimeout=10`, {}, 'queue.updateMessage'],
    ['queue', 'DELETE', `${A}/q/messages`, {}, 'queue.clearMessages'],
    ['queue', 'PUT', `${A}/q`, {}, 'queue.createQueue'],
    ['queue', 'DELETE', `${A}/q`, {}, 'queue.deleteQueue'],
    ['queue', 'GET', `${A}/q?comp=metadata`, {}, 'queue.queueMetadata'],
    ['queue', 'GET', `${A}?comp=list`, {}, 'queue.listQueues'],
    ['table', 'GET', `${A}/t()?$filter=PartitionKey%20eq%20'p'`, {}, 'table.query'],
    ['table', 'GET', `${A}/t`, {}, 'table.query'],
    ['table', 'GET', `${A}/t(PartitionKey='p',RowKey='r')`, {}, 'table.pointRead'],
    ['table', 'GET', `${A}/t(PartitionKey=%27p%27,RowKey=%27r%27)`, {}, 'table.pointRead'],
    ['table', 'POST', `${A}/t`, {}, 'table.insert'],
    ['table', 'PUT', `${A}/t(PartitionKey='p',RowKey='r')`, {}, 'table.update'],
    ['table', 'PATCH', `${A}/t(PartitionKey='p',RowKey='r')`, {}, 'table.merge'],
    ['table', 'MERGE', `${A}/t(PartitionKey='p',RowKey='r')`, {}, 'table.merge'],
    ['table', 'POST', `${A}/t(PartitionKey='p',RowKey='r')`, { 'x-http-method': 'MERGE' }, 'table.merge'],
    ['table', 'DELETE', `${A}/t(PartitionKey='p',RowKey='r')`, {}, 'table.delete'],
    ['table', 'POST', `${A}/$batch`, {}, 'table.batch'],
    ['table', 'POST', `${A}/Tables`, {}, 'table.createTable'],
    ['table', 'DELETE', `${A}/Tables('t')`, {}, 'table.deleteTable'],
    ['table', 'GET', `${A}/Tables`, {}, 'table.queryTables'],
];

describe('classifyStorageRequest', () => {
    it.each(rows)('%s %s %s %j is %s', (service, method, url, headers, kind) => {
        expect(classifyStorageRequest({ service, method, url, headers })).toBe(kind);
    });
});

describe('BatchOperationCounter', () => {
    const body = [
        '--batch_1',
        'Content-Type: multipart/mixed; boundary=changeset_1',
        '',
        '--changeset_1',
        'Content-Type: application/http',
        '',
        "PATCH http://127.0.0.1:1/devstoreaccount1/t(PartitionKey='p',RowKey='a') HTTP/1.1",
        'Accept: application/json',
        '',
        '{"x":"POST http://not/a/request HTTP/1.1"}',
        '--changeset_1',
        '',
        'POST http://127.0.0.1:1/devstoreaccount1/t HTTP/1.1',
        '',
        '--changeset_1',
        '',
        "DELETE http://127.0.0.1:1/devstoreaccount1/t(PartitionKey='p',RowKey='b') HTTP/1.1",
        '--changeset_1--',
        '--batch_1--',
        '',
    ].join('\r\n');

    it('counts each request line of the change set, not text that merely contains one', () => {
        const c = new BatchOperationCounter();
        c.push(Buffer.from(body));
        expect(c.finish()).toBe(3);
    });

    it('counts a request line split across chunks once', () => {
        const bytes = Buffer.from(body);
        for (let cut = 1; cut < bytes.length; cut += 7) {
            const c = new BatchOperationCounter();
            c.push(bytes.subarray(0, cut));
            c.push(bytes.subarray(cut));
            expect(c.finish()).toBe(3);
        }
    });
});
