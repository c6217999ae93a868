import { BlobClient, RestError } from '@azure/storage-blob';
import { HvrError } from '../errors';
import { ByteSource, checkReadRange } from '../hrl/source';
import { deadline } from './deadline';

/** Ranges of 8 MiB, a few in flight, are what a page or block blob serves fastest (docs: platform facts). */
const RANGE_BYTES = 8 * 1024 * 1024;
const RANGES_IN_FLIGHT = 4;

function mapBlobError(err: unknown, blob: BlobClient, what: string): unknown {
    if (err instanceof RestError) {
        if (err.statusCode === 412) {
            return new HvrError(
                'CONCURRENT_UPDATE',
                `blob ${blob.name} changed while it was being read (${what}): read it again from the start`,
                { blob: blob.name },
                { cause: err },
            );
        }
        if (err.statusCode === 404) {
            return new HvrError(
                'NOT_FOUND',
                `blob ${blob.name} does not exist (${what})`,
                { blob: blob.name },
                { cause: err },
            );
        }
    }
    return err;
}

/** The version of a blob a source reads: its size and ETag, as one Get Blob Properties returned them. */
export interface BlobVersion {
    size: number;
    etag: string;
}

/**
 * A ByteSource over a blob with ranged GETs. The size and ETag come from one Get Blob Properties (or from
 * `version`, when the caller read them already and must read exactly that version); every read is conditional
 * on that ETag, so a log overwritten mid-read fails (CONCURRENT_UPDATE) instead of mixing versions. Every call
 * carries `abortSignal: deadline(...)`, bounded by `timeoutMs` and by the caller's signals.
 */
export async function openBlobSource(
    blob: BlobClient,
    options: { signal?: AbortSignal; timeoutMs?: number; version?: BlobVersion } = {},
): Promise<ByteSource> {
    let version = options.version;
    if (!version) {
        let props;
        try {
            props = await blob.getProperties({ abortSignal: deadline(options.timeoutMs, options.signal) });
        } catch (err) {
            throw mapBlobError(err, blob, 'get properties');
        }
        version = { size: props.contentLength ?? 0, etag: props.etag ?? '' };
    }
    const { size, etag } = version;
    return {
        size,
        async read(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
            checkReadRange(size, offset, length);
            if (length === 0) return Buffer.alloc(0);
            const parent =
                signal && options.signal ? AbortSignal.any([signal, options.signal]) : (signal ?? options.signal);
            const out = Buffer.allocUnsafe(length);
            try {
                await blob.downloadToBuffer(out, offset, length, {
                    abortSignal: deadline(options.timeoutMs, parent),
                    conditions: etag ? { ifMatch: etag } : undefined,
                    blockSize: RANGE_BYTES,
                    concurrency: RANGES_IN_FLIGHT,
                    maxRetryRequestsPerBlock: 3,
                });
            } catch (err) {
                throw mapBlobError(err, blob, `read ${length} bytes at ${offset}`);
            }
            return out;
        },
    };
}
