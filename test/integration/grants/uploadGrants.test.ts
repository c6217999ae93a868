import { randomBytes } from 'node:crypto';
import { AnonymousCredential, BlobServiceClient, BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { BlobUploadGrants, UploadTarget } from '../../../shared/grants/uploadGrants';
import { testStorage, uniqueName } from '../../support/azurite';

const target: UploadTarget = {
    siteId: 'site-a',
    vmId: 'vm-1',
    diskId: 'disk-0',
    sequence: 7,
    logId: '7a7a7a7a-0000-4000-8000-000000000007',
};

async function expectStatus(promise: Promise<unknown>, status: number): Promise<void> {
    await expect(promise).rejects.toMatchObject({ statusCode: status });
}

describe('upload grants against Azurite', () => {
    const conn = testStorage();
    let container: string;
    let grants: BlobUploadGrants;

    beforeAll(async () => {
        container = uniqueName('replicalogs');
        await conn.blob.getContainerClient(container).create({ abortSignal: AbortSignal.timeout(10_000) });
        grants = new BlobUploadGrants(conn, { container, ttlMinutes: 30 });
    });

    it('grants exactly the blob replica-logs/{site}/{vm}/{disk}/{n}-{logId}.hrl with create+write only', async () => {
        const [grant] = await grants.issue([target], new Date());
        expect(grant!.blobPath).toBe(`${container}/site-a/vm-1/disk-0/7-7a7a7a7a-0000-4000-8000-000000000007.hrl`);
        const params = new URL(grant!.url).searchParams;
        expect(params.get('sp')).toBe('cw');
        expect(params.get('sr')).toBe('b');
        expect(new Date(params.get('se')!).getTime()).toBe(new Date(grant!.expiresOn).getTime());
    });

    it('lets the provider upload its one log in one PUT with the metadata the merge reads', async () => {
        const [grant] = await grants.issue(
            [{ ...target, sequence: 1, logId: '00000001-0000-4000-8000-000000000001' }],
            new Date(),
        );
        const blob = new BlockBlobClient(grant!.url);
        const body = randomBytes(4096);
        await blob.upload(body, body.length, {
            metadata: {
                cycleid: 'c1',
                consistency: 'CrashConsistent',
                capturedat: '2025-01-15T10:30:00Z',
                resync: 'false',
            },
            abortSignal: AbortSignal.timeout(10_000),
        });
        const stored = conn.blob
            .getContainerClient(container)
            .getBlobClient('site-a/vm-1/disk-0/1-00000001-0000-4000-8000-000000000001.hrl');
        const props = await stored.getProperties({ abortSignal: AbortSignal.timeout(10_000) });
        expect(props.contentLength).toBe(4096);
        expect(props.metadata).toMatchObject({ cycleid: 'c1', consistency: 'CrashConsistent' });
    });

    it('lets a large log go up as staged blocks committed with a block list', async () => {
        const [grant] = await grants.issue(
            [{ ...target, sequence: 2, logId: '00000002-0000-4000-8000-000000000002' }],
            new Date(),
        );
        const blob = new BlockBlobClient(grant!.url);
        const blocks = [randomBytes(1024 * 1024), randomBytes(1024 * 1024), randomBytes(300)];
        const ids = blocks.map((_, i) => Buffer.from(`block-${String(i).padStart(6, '0')}`).toString('base64'));
        for (let i = 0; i < blocks.length; i++) {
            await blob.stageBlock(ids[i]!, blocks[i]!, blocks[i]!.length, { abortSignal: AbortSignal.timeout(10_000) });
        }
        await blob.commitBlockList(ids, { metadata: { cycleid: 'c2' }, abortSignal: AbortSignal.timeout(10_000) });
        const stored = conn.blob
            .getContainerClient(container)
            .getBlobClient('site-a/vm-1/disk-0/2-00000002-0000-4000-8000-000000000002.hrl');
        const data = await stored.downloadToBuffer(0, undefined, { abortSignal: AbortSignal.timeout(10_000) });
        expect(data.equals(Buffer.concat(blocks))).toBe(true);
    });

    it('cannot read, not even the blob it wrote', async () => {
        const [grant] = await grants.issue(
            [{ ...target, sequence: 3, logId: '00000003-0000-4000-8000-000000000003' }],
            new Date(),
        );
        const blob = new BlockBlobClient(grant!.url);
        await blob.upload(Buffer.from('x'), 1, { abortSignal: AbortSignal.timeout(10_000) });
        await expectStatus(blob.download(0, undefined, { abortSignal: AbortSignal.timeout(10_000) }), 403);
        await expectStatus(blob.getProperties({ abortSignal: AbortSignal.timeout(10_000) }), 403);
    });

    it('cannot delete its blob', async () => {
        const [grant] = await grants.issue(
            [{ ...target, sequence: 4, logId: '00000004-0000-4000-8000-000000000004' }],
            new Date(),
        );
        const blob = new BlockBlobClient(grant!.url);
        await blob.upload(Buffer.from('x'), 1, { abortSignal: AbortSignal.timeout(10_000) });
        await expectStatus(blob.delete({ abortSignal: AbortSignal.timeout(10_000) }), 403);
    });

    it('cannot list the container', async () => {
        const [grant] = await grants.issue([target], new Date());
        const url = new URL(grant!.url);
        const containerUrl = `${url.origin}${url.pathname.split('/').slice(0, 3).join('/')}${url.search}`;
        const list = new ContainerClient(containerUrl).listBlobsFlat({ abortSignal: AbortSignal.timeout(10_000) });
        await expectStatus(list.next(), 403);
    });

    it('cannot write any other path, not even a sibling log of the same disk', async () => {
        const [grant] = await grants.issue([target], new Date());
        const url = new URL(grant!.url);
        for (const other of [
            '7-8a8a8a8a-0000-4000-8000-000000000008.hrl',
            '8-7a7a7a7a-0000-4000-8000-000000000007.hrl',
        ]) {
            url.pathname = url.pathname.replace(/[^/]+$/, other);
            const blob = new BlockBlobClient(url.toString());
            await expectStatus(blob.upload(Buffer.from('x'), 1, { abortSignal: AbortSignal.timeout(10_000) }), 403);
        }
        const otherVm = new URL(grant!.url);
        otherVm.pathname = otherVm.pathname.replace('/vm-1/', '/vm-2/');
        await expectStatus(
            new BlockBlobClient(otherVm.toString()).upload(Buffer.from('x'), 1, {
                abortSignal: AbortSignal.timeout(10_000),
            }),
            403,
        );
        const exists = await conn.blob
            .getContainerClient(container)
            .getBlobClient('site-a/vm-2/disk-0/7-7a7a7a7a-0000-4000-8000-000000000007.hrl')
            .exists({ abortSignal: AbortSignal.timeout(10_000) });
        expect(exists).toBe(false);
    });

    it('cannot write once expired', async () => {
        const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
        const [grant] = await grants.issue(
            [{ ...target, sequence: 5, logId: '00000005-0000-4000-8000-000000000005' }],
            twoHoursAgo,
        );
        expect(new Date(grant!.expiresOn).getTime()).toBeLessThan(Date.now());
        const blob = new BlockBlobClient(grant!.url);
        await expectStatus(blob.upload(Buffer.from('x'), 1, { abortSignal: AbortSignal.timeout(10_000) }), 403);
        const exists = await conn.blob
            .getContainerClient(container)
            .getBlobClient('site-a/vm-1/disk-0/5-expired.hrl')
            .exists({ abortSignal: AbortSignal.timeout(10_000) });
        expect(exists).toBe(false);
    });

    it('refuses a lifetime outside 1–1440 minutes', () => {
        expect(() => new BlobUploadGrants(conn, { ttlMinutes: 0 })).toThrow(/1–1440/);
    });
});

describe('upload grants with a managed identity (user delegation SAS)', () => {
    function identityConnection(getKey: () => Promise<unknown>) {
        const blob = new BlobServiceClient('https://acct.blob.core.windows.net', new AnonymousCredential());
        const calls: [Date, Date][] = [];
        Object.assign(blob, {
            getUserDelegationKey: async (startsOn: Date, expiresOn: Date) => {
                calls.push([startsOn, expiresOn]);
                return getKey();
            },
        });
        return { conn: { blob, tables: undefined as never, tableClient: () => undefined as never }, calls };
    }
    const key = {
        signedObjectId: '11111111-1111-1111-1111-111111111111',
        signedTenantId: '22222222-2222-2222-2222-222222222222',
        signedStartsOn: new Date('2025-01-15T00:00:00Z'),
        signedExpiresOn: new Date('2025-01-16T00:00:00Z'),
        signedService: 'b',
        signedVersion: '2024-08-04',
        value: Buffer.alloc(32, 3).toString('base64'),
    };

    it('signs with a user delegation key (skoid/sktid present), https only, fetching the key once for many grants', async () => {
        const { conn, calls } = identityConnection(async () => key);
        const grants = new BlobUploadGrants(conn);
        const at = new Date('2025-01-15T10:30:00Z');
        const [first] = await grants.issue([target], at);
        await grants.issue(
            [{ ...target, sequence: 8, logId: '8a8a8a8a-0000-4000-8000-000000000008' }],
            new Date(at.getTime() + 60_000),
        );
        const params = new URL(first!.url).searchParams;
        expect(params.get('skoid')).toBe(key.signedObjectId);
        expect(params.get('sktid')).toBe(key.signedTenantId);
        expect(params.get('sp')).toBe('cw');
        expect(params.get('spr')).toBe('https');
        expect(
            first!.url.startsWith(
                'https://acct.blob.core.windows.net/replica-logs/site-a/vm-1/disk-0/7-7a7a7a7a-0000-4000-8000-000000000007.hrl?',
            ),
        ).toBe(true);
        expect(calls).toHaveLength(1);
    });

    it('says which role is missing when the identity may not get a delegation key', async () => {
        const { conn } = identityConnection(async () =>
            Promise.reject(Object.assign(new Error('AuthorizationPermissionMismatch'), { statusCode: 403 })),
        );
        await expect(new BlobUploadGrants(conn).issue([target], new Date())).rejects.toMatchObject({
            code: 'FORBIDDEN',
            message: expect.stringContaining('Storage Blob Delegator'),
        });
    });
});
