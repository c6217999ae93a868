import type { StorageOpKind } from '../support/storageOps';

/**
 * List prices the cost model (bench/cost/model.ts) multiplies counts by: the one place they are written.
 *
 * Region East US, USD, pay-as-you-go, no reservations or agreements, as remembered on PRICES_AS_OF. They were
 * NOT read from the price pages when written (there is no network here): every figure must be checked against
 * the page named next to it (https://azure.microsoft.com/pricing/details/<page>/ or the pricing calculator) for
 * the region and agreement of a deployment before a decision rests on it.
 *
 * The SKUs are infra/'s defaults: both storage accounts StorageV2 (general purpose v2) Standard_LRS, hot tier;
 * Service Bus Standard; Flex Consumption on-demand with 2048 MB instances and no always-ready instances;
 * Event Grid system topic (basic operations); workspace-based Application Insights on a PerGB2018 Log Analytics
 * workspace with the included 30-day retention; the log alert rules of infra/modules/alerts.bicep.
 */
export const PRICES_AS_OF = '2026-12-02';
export const PRICES_REGION = 'East US';
export const PRICES_CURRENCY = 'USD';
/** Azure bills a month as 730 hours. */
export const HOURS_PER_MONTH = 730;

/** Page "functions" (Azure Functions pricing), Flex Consumption section. */
export const FLEX_CONSUMPTION = {
    /** On demand: per GB-second of instance memory while the instance executes at least one function. */
    onDemandPerGbSecond: 0.000026,
    /** On demand: per execution (quoted as $0.40 per million). */
    onDemandPerExecution: 0.4 / 1_000_000,
    /** Monthly free grant per subscription, on demand only: GB-seconds and executions. Not used by default. */
    freeGbSecondsPerMonth: 100_000,
    freeExecutionsPerMonth: 250_000,
    /** Always ready: baseline per GB-second of every always-ready instance, busy or not. */
    alwaysReadyBaselinePerGbSecond: 0.000004,
    /** Always ready: per GB-second while executing, and per execution. */
    alwaysReadyPerGbSecond: 0.000016,
    alwaysReadyPerExecution: 0.4 / 1_000_000,
    /** infra/main.bicep `instanceMemoryMB` default. */
    instanceMemoryMb: 2048,
} as const;

/**
 * Page "storage/blobs" (Block blob pricing, general purpose v2, hot, LRS), per operation (quoted per 10,000).
 * Delete Blob and Delete Container are free.
 */
export const BLOB_HOT_LRS = {
    write: 0.055 / 10_000,
    listAndCreateContainer: 0.055 / 10_000,
    read: 0.0044 / 10_000,
    other: 0.0044 / 10_000,
} as const;

/**
 * Page "storage/page-blobs" (standard page blobs, general purpose v2, LRS), per operation. Priced here at the
 * hot block blob rates, the higher of the figures remembered: if the page's lower rate for page blob transactions
 * applies (unmanaged standard disks are billed about $0.0005 per 10,000 of any kind), Put Page, Clear Pages and
 * the other page blob calls cost about a hundredth of this. Check first: it moves the replica writes' share.
 */
export const PAGE_BLOB_LRS = {
    write: 0.055 / 10_000,
    read: 0.0044 / 10_000,
    other: 0.0044 / 10_000,
} as const;

/** Page "storage/queues" (general purpose v2, LRS), per operation (quoted per 10,000). */
export const QUEUE_LRS = {
    /** Class 1: put, update, delete and clear messages, create, delete and list queues, set metadata. */
    class1: 0.004 / 10_000,
    /** Class 2: get and peek messages, get queue metadata and properties. */
    class2: 0.004 / 10_000,
} as const;

/**
 * Page "storage/tables" (LRS), per transaction (quoted per 10,000), any kind. An entity group transaction (batch)
 * is billed as one transaction whatever it holds.
 */
export const TABLE_LRS = {
    transaction: 0.00036 / 10_000,
} as const;

/** Page "service-bus" (Standard tier). */
export const SERVICE_BUS_STANDARD = {
    /** Base charge per namespace, per hour (about $9.86 a month). */
    basePerHour: 0.0135,
    /** Operations included in the base charge each month. */
    includedOperationsPerMonth: 13_000_000,
    /**
     * Per operation above the included ones, by tier of the month's total: up to 100 million $0.80 per million,
     * up to 2,500 million $0.50, beyond $0.20.
     */
    operationTiers: [
        { upToOperationsPerMonth: 100_000_000, perOperation: 0.8 / 1_000_000 },
        { upToOperationsPerMonth: 2_500_000_000, perOperation: 0.5 / 1_000_000 },
        { upToOperationsPerMonth: Infinity, perOperation: 0.2 / 1_000_000 },
    ],
} as const;

/**
 * Page "event-grid" (basic operations: publishes into a topic, system topics included here as a conservative
 * reading, and every delivery attempt; basic subject filters are free, advanced filters are not used by infra).
 */
export const EVENT_GRID_BASIC = {
    perOperation: 0.6 / 1_000_000,
    freeOperationsPerMonth: 100_000,
} as const;

/**
 * Page "monitor" (Log Analytics analytics logs, pay-as-you-go, which workspace-based Application Insights bills
 * under; 31 days of retention included), and its log alert rules (per rule per month by evaluation frequency).
 */
export const MONITOR = {
    perGbIngested: 2.3,
    /** Per billing account per month; not used by default (a fleet does not live in the free allowance). */
    freeGbPerMonth: 5,
    logAlertPerMonthAt5Minutes: 1.5,
    logAlertPerMonthAt15Minutes: 0.5,
    /** infra/modules/alerts.bicep: four rules evaluated every 5 minutes, one every 15. */
    logAlertsAt5Minutes: 4,
    logAlertsAt15Minutes: 1,
} as const;

/** Page "storage/page-blobs" and "storage/blobs": capacity, per GB-month (the replica storage, reported apart). */
export const CAPACITY_LRS = {
    /** Standard page blob data written (page blobs are billed by the pages holding data, sparse). */
    pageBlobPerGbMonth: 0.045,
    /** Snapshots are billed by the pages that differ from the base blob, at the same rate. */
    snapshotPerGbMonth: 0.045,
    /** Hot block blobs (uploaded logs while they wait to merge). */
    blockBlobHotPerGbMonth: 0.018,
} as const;

/** The price class a storage operation is billed in, and its price per operation. */
export interface StoragePriceClass {
    /** Names the line of the price page, e.g. `blob write`, `queue class 1`, `table`. */
    priceClass: string;
    perOperation: number;
}

const blobWrite = { priceClass: 'blob write', perOperation: BLOB_HOT_LRS.write };
const blobList = { priceClass: 'blob list/create container', perOperation: BLOB_HOT_LRS.listAndCreateContainer };
const blobRead = { priceClass: 'blob read', perOperation: BLOB_HOT_LRS.read };
const blobOther = { priceClass: 'blob other', perOperation: BLOB_HOT_LRS.other };
const free = { priceClass: 'free', perOperation: 0 };
const pageWrite = { priceClass: 'page blob write', perOperation: PAGE_BLOB_LRS.write };
const pageRead = { priceClass: 'page blob read', perOperation: PAGE_BLOB_LRS.read };
const queue1 = { priceClass: 'queue class 1', perOperation: QUEUE_LRS.class1 };
const queue2 = { priceClass: 'queue class 2', perOperation: QUEUE_LRS.class2 };
const table = { priceClass: 'table', perOperation: TABLE_LRS.transaction };

/**
 * Every kind the storage counter tells apart, priced. Kinds that touch page blobs only (Put Page, Clear Pages,
 * Get Page Ranges) take the page blob rates; the others the block blob rates (a snapshot of a page blob is a
 * write either way).
 */
export const STORAGE_PRICE: Record<StorageOpKind, StoragePriceClass> = {
    'blob.putPage': pageWrite,
    'blob.clearPages': pageWrite,
    'blob.getBlob': blobRead,
    'blob.getBlobRange': blobRead,
    'blob.getPageRanges': pageRead,
    'blob.getPageRangesDiff': pageRead,
    'blob.snapshot': blobWrite,
    'blob.putBlob': blobWrite,
    'blob.putBlock': blobWrite,
    'blob.putBlockList': blobWrite,
    'blob.getBlockList': blobOther,
    'blob.copyBlob': blobWrite,
    'blob.getProperties': blobOther,
    'blob.setProperties': blobOther,
    'blob.getMetadata': blobOther,
    'blob.setMetadata': blobOther,
    'blob.tags': blobOther,
    'blob.lease': blobOther,
    'blob.deleteBlob': free,
    'blob.createContainer': blobList,
    'blob.deleteContainer': free,
    'blob.containerProperties': blobOther,
    'blob.containerLease': blobOther,
    'blob.listBlobs': blobList,
    'blob.listContainers': blobList,
    'blob.service': blobOther,
    'blob.batch': blobOther,
    'blob.other': blobOther,
    'queue.putMessage': queue1,
    'queue.getMessages': queue2,
    'queue.peekMessages': queue2,
    'queue.deleteMessage': queue1,
    'queue.updateMessage': queue1,
    'queue.clearMessages': queue1,
    'queue.createQueue': queue1,
    'queue.deleteQueue': queue1,
    'queue.queueMetadata': queue2,
    'queue.listQueues': queue1,
    'queue.service': queue2,
    'queue.other': queue2,
    'table.query': table,
    'table.pointRead': table,
    'table.insert': table,
    'table.update': table,
    'table.merge': table,
    'table.delete': table,
    'table.batch': table,
    'table.createTable': table,
    'table.deleteTable': table,
    'table.queryTables': table,
    'table.service': table,
    'table.other': table,
};
