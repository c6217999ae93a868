import { BlockBlobClient, ContainerClient, RestError } from '@azure/storage-blob';
import { BlobUploadGrants, UploadTarget } from '../../shared/grants/uploadGrants';
import { testStorage, uniqueName } from '../support/azurite';

const target: UploadTarget = {
    siteId: 'site-a',
    vmId: 'vm-a1',
    diskId: 'd0',
    sequence: 7,
    logId: '7aa8a253-2692-47f5-92bc-b9558d6f8907',
};
const bound = () => ({ abortSignal: AbortSignal.timeout(10_000) });
/** Azure answers a bad or expired signature AuthenticationFailed; Azurite says AuthorizationFailure. */
const SIGNATURE_REFUSED = expect.stringMatching(/^(AuthenticationFailed|AuthorizationFailure)$/) as unknown;

/** The refusal as Storage states it: the HTTP status and its error code. */
async function refusal(promise: Promise<unknown>): Promise<{ status?: number; code?: string }> {
    try {
        await promise;
    } catch (err) {
        if (err instanceof RestError) return { status: err.statusCode, code: err.code };
        throw err;
    }
    return {};
}

describe('what an upload grant can and cannot do (SAS against Azurite)', () => {
    const conn = testStorage();
    let container: string;
    let otherContainer: string;
    let grants: BlobUploadGrants;
    /** Every blob of both containers with its ETag: an attack must leave this as it was. */
    const inventory = async () => {
        const rows: string[] = [];
        for (const name of [container, otherContainer]) {
            for await (const blob of conn.blob.getContainerClient(name).listBlobsFlat()) {
                rows.push(`${name}/${blob.name}@${blob.properties.etag}`);
            }
        }
        return rows.sort();
    };

    beforeAll(async () => {
        container = uniqueName('seclogs');
        otherContainer = uniqueName('secreplicas');
        await conn.blob.getContainerClient(container).create(bound());
        await conn.blob.getContainerClient(otherContainer).create(bound());
        await conn.blob
            .getContainerClient(otherContainer)
            .getBlockBlobClient('vm-a1/d0.vhd')
            .upload('replica', 7, bound());
        grants = new BlobUploadGrants(conn, { container, ttlMinutes: 30 });
        const [grant] = await grants.issue([target], new Date());
        await new BlockBlobClient(grant!.url).upload('log', 3, bound());
    });

    async function grantUrl(): Promise<string> {
        const [grant] = await grants.issue([target], new Date());
        return grant!.url;
    }

    it('cannot read its own blob or its properties (403)', async () => {
        const blob = new BlockBlobClient(await grantUrl());
        const before = await inventory();
        expect(await refusal(blob.download(0, undefined, bound()))).toMatchObject({ status: 403 });
        expect(await refusal(blob.getProperties(bound()))).toMatchObject({ status: 403 });
        expect(await inventory()).toEqual(before);
    });

    it('cannot list the container (403)', async () => {
        const url = new URL(await grantUrl());
        const containerUrl = `${url.origin}${url.pathname.split('/').slice(0, 3).join('/')}${url.search}`;
        const before = await inventory();
        const listing = new ContainerClient(containerUrl).listBlobsFlat(bound());
        expect(await refusal(listing.next())).toMatchObject({ status: 403 });
        expect(await inventory()).toEqual(before);
    });

    it('cannot write another blob of its container: another log, another disk, another VM (403)', async () => {
        const before = await inventory();
        for (const path of [
            'site-a/vm-a1/d0/8-log-8.hrl',
            'site-a/vm-a1/d1/7-7aa8a253-2692-47f5-92bc-b9558d6f8907.hrl',
            'site-b/vm-b1/d0/7-7aa8a253-2692-47f5-92bc-b9558d6f8907.hrl',
        ]) {
            const url = new URL(await grantUrl());
            url.pathname = `/${url.pathname.split('/')[1]}/${container}/${path}`;
            const outcome = await refusal(new BlockBlobClient(url.toString()).upload('x', 1, bound()));
            expect({ path, ...outcome }).toMatchObject({ path, status: 403, code: SIGNATURE_REFUSED });
        }
        expect(await inventory()).toEqual(before);
    });

    it('cannot touch another container, not even the same path (403)', async () => {
        const before = await inventory();
        for (const path of [
            `${otherContainer}/vm-a1/d0.vhd`,
            `${otherContainer}/site-a/vm-a1/d0/7-7aa8a253-2692-47f5-92bc-b9558d6f8907.hrl`,
        ]) {
            const url = new URL(await grantUrl());
            url.pathname = `/${url.pathname.split('/')[1]}/${path}`;
            const blob = new BlockBlobClient(url.toString());
            expect(await refusal(blob.upload('x', 1, bound()))).toMatchObject({ status: 403 });
            expect(await refusal(blob.download(0, undefined, bound()))).toMatchObject({ status: 403 });
            expect(await refusal(blob.delete(bound()))).toMatchObject({ status: 403 });
        }
        expect(await inventory()).toEqual(before);
    });

    it('cannot delete its blob (403)', async () => {
        const blob = new BlockBlobClient(await grantUrl());
        const before = await inventory();
        expect(await refusal(blob.delete(bound()))).toMatchObject({ status: 403 });
        expect(await inventory()).toEqual(before);
    });

    it('cannot write after it expired (403)', async () => {
        const [expired] = await grants.issue(
            [{ ...target, sequence: 9, logId: '7aa8a253-2692-47f5-92bc-b9558d6f8909' }],
            new Date(Date.now() - 2 * 3_600_000),
        );
        const before = await inventory();
        expect(await refusal(new BlockBlobClient(expired!.url).upload('x', 1, bound()))).toMatchObject({
            status: 403,
            code: SIGNATURE_REFUSED,
        });
        expect(await inventory()).toEqual(before);
    });

    it('cannot widen itself by editing its permissions or expiry (the signature covers them)', async () => {
        const before = await inventory();
        for (const [param, value] of [
            ['sp', 'racwdl'],
            ['se', '2099-01-01T00:00:00Z'],
            ['sr', 'c'],
        ] as const) {
            const url = new URL(await grantUrl());
            url.searchParams.set(param, value);
            const outcome = await refusal(new BlockBlobClient(url.toString()).download(0, undefined, bound()));
            expect({ param, ...outcome }).toMatchObject({ param, status: 403 });
        }
        expect(await inventory()).toEqual(before);
    });

    it('can, while valid, rewrite its own blob and its metadata (write allows Set Blob Metadata): the merge must not trust either', async () => {
        const blob = new BlockBlobClient(await grantUrl());
        await blob.setMetadata({ resync: 'true' }, bound());
        await blob.upload('log again', 9, bound());
        const props = await conn.blob
            .getContainerClient(container)
            .getBlobClient('site-a/vm-a1/d0/7-7aa8a253-2692-47f5-92bc-b9558d6f8907.hrl')
            .getProperties(bound());
        expect(props.contentLength).toBe(9);
    });
});
