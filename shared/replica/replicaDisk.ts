import { RestError } from '@azure/core-rest-pipeline';
import { BlobServiceClient, PageBlobClient } from '@azure/storage-blob';
import { createHash } from 'node:crypto';
import { HvrError } from '../errors';
import { createReplicaDiskRecord, getReplicaDisk, ReplicaDiskRecord } from '../state/disks';
import { StateScope } from '../state/protectedItems';
import { deadline } from '../storage/deadline';
import { decodeVhdFooter, encodeVhdFooter, replicaBlobSize, roundUpToMiB } from '../vhd/footer';
import { REPLICAS_CONTAINER, replicaBlobName } from '../contracts/blobNames';

/** The page blob of one replica disk: `replicas/{vmId}/{diskId}.vhd` (named by the contract's blobNames). */
export { replicaBlobName };

export function replicaPageBlob(blob: BlobServiceClient, blobName: string): PageBlobClient {
    return blob.getContainerClient(REPLICAS_CONTAINER).getPageBlobClient(blobName);
}

/** A disk's VHD UniqueId derived from its ids, so a retried creation writes the very same footer. */
function footerUniqueId(vmId: string, diskId: string): string {
    const h = createHash('sha256').update(`${vmId}/${diskId}`).digest('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface CreateReplicaDiskInput {
    vmId: string;
    diskId: string;
    /** The source disk's size in bytes; the replica's virtual size is this rounded up to a whole MiB. */
    sizeBytes: number;
    /** Written into the footer's time stamp; pass the protection's start so retries write the same bytes. */
    createdAt: Date;
}

/**
 * Creates the replica page blob (virtual size + the 512-byte fixed-VHD footer, sequence number 0) with its
 * footer. Idempotent: a blob that already exists with the same size is kept (its footer written if a crash
 * left it blank); one of another size is REPLICA_STATE_INVALID. Returns the virtual size.
 */
export async function createReplicaDisk(blob: BlobServiceClient, input: CreateReplicaDiskInput): Promise<number> {
    const virtualSize = roundUpToMiB(input.sizeBytes);
    const size = replicaBlobSize(virtualSize);
    const container = blob.getContainerClient(REPLICAS_CONTAINER);
    await container.createIfNotExists({ abortSignal: deadline() });
    const page = container.getPageBlobClient(replicaBlobName(input.vmId, input.diskId));
    try {
        await page.create(size, {
            blobSequenceNumber: 0,
            conditions: { ifNoneMatch: '*' },
            abortSignal: deadline(),
        });
    } catch (err) {
        if (!(err instanceof RestError && (err.statusCode === 409 || err.statusCode === 412))) throw err;
        const props = await page.getProperties({ abortSignal: deadline() });
        if (props.contentLength !== size) {
            throw new HvrError(
                'REPLICA_STATE_INVALID',
                `Replica ${page.name} exists with ${props.contentLength} bytes, not the ${size} a ` +
                    `${virtualSize}-byte disk needs; delete it or resynchronize.`,
                { blobName: page.name, size: props.contentLength, expected: size },
            );
        }
        const existing = await page.download(virtualSize, 512, { abortSignal: deadline() });
        const footerBytes = await streamToBuffer(existing.readableStreamBody);
        if (!footerBytes.equals(Buffer.alloc(512))) {
            const footer = decodeVhdFooter(footerBytes);
            if (footer.currentSize !== virtualSize) {
                throw new HvrError(
                    'REPLICA_STATE_INVALID',
                    `Replica ${page.name} has a footer for ${footer.currentSize} bytes, not ${virtualSize}.`,
                );
            }
            return virtualSize;
        }
    }
    const footer = encodeVhdFooter({
        virtualSize,
        uniqueId: footerUniqueId(input.vmId, input.diskId),
        timestamp: input.createdAt,
    });
    // The footer goes in while the sequence number is still 0: no log has been applied yet.
    await page.uploadPages(footer, virtualSize, footer.length, {
        conditions: { ifSequenceNumberEqualTo: 0 },
        abortSignal: deadline(),
    });
    return virtualSize;
}

async function streamToBuffer(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
    const chunks: Buffer[] = [];
    if (stream) for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
}

export interface RegisterReplicaDiskInput extends CreateReplicaDiskInput {
    siteId: string;
}

/**
 * Makes a protected disk ready for logs: the replica blob with its footer, then the disk row (Replicating,
 * sequence 0). Both steps are idempotent, so enable protection can retry it. Returns the row.
 */
export async function registerReplicaDisk(
    scope: StateScope,
    input: RegisterReplicaDiskInput,
): Promise<ReplicaDiskRecord> {
    const virtualSize = await createReplicaDisk(scope.conn.blob, input);
    const at = input.createdAt.toISOString();
    const record: ReplicaDiskRecord = {
        vmId: input.vmId,
        diskId: input.diskId,
        siteId: input.siteId,
        virtualSize,
        blobName: replicaBlobName(input.vmId, input.diskId),
        state: 'Replicating',
        sequence: 0,
        appliedBytes: 0,
        createdAt: at,
        updatedAt: at,
    };
    await createReplicaDiskRecord(scope, record);
    const row = await getReplicaDisk(scope, input.vmId, input.diskId);
    return row!.disk;
}
