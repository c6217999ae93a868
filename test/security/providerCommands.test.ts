import { handleProviderCommand, ProviderCommandDelivery } from '../../shared/contracts/commandHandler';
import { providerCommandPorts, setProviderChannel } from '../../shared/contracts/channel';
import { MAX_COMMAND_BYTES } from '../../shared/contracts/messages';
import { DiskCheckedUploadGrants, VmDiskCatalog } from '../../shared/grants/vmDisks';
import { setPorts } from '../../shared/ports';
import { connectionFromString } from '../../shared/storage/connections';
import { createProtectedItem, ProtectedItem, StateScope } from '../../shared/state/protectedItems';
import { commands, FakeChannel, fakeChannel, NOW, SITE_A, SITE_B, signedDelivery } from '../unit/contracts/fakeChannel';

/** vm-a1 has disks d0 and d1; vm-a2 is assigned to site-a but has no protected item (no disks recorded). */
const CATALOG: VmDiskCatalog = {
    diskIdsOf: async (vmId) => (vmId === 'vm-a1' ? ['d0', 'd1'] : undefined),
};

function channelWithDiskCheck(): FakeChannel {
    const channel = fakeChannel();
    channel.ports.grants = new DiskCheckedUploadGrants(channel.ports.grants, CATALOG);
    return channel;
}

/** The refusal, its reason, and that nothing changed: no write, no remembered id, a warning logged. */
async function expectRefused(
    channel: FakeChannel,
    delivery: ProviderCommandDelivery,
    reason: string,
    description?: RegExp,
): Promise<void> {
    const outcome = await handleProviderCommand(delivery, channel.ports);
    expect(outcome).toMatchObject({ action: 'deadLetter', reason });
    if (description && outcome.action === 'deadLetter') expect(outcome.description).toMatch(description);
    expect(channel.writes).toEqual([]);
    expect(channel.seen.size).toBe(0);
    expect(channel.logs.some((l) => l.level === 'warn' && l.fields?.reason === reason)).toBe(true);
}

const minutes = (n: number) => new Date(NOW.getTime() + n * 60_000);

describe('forged commands are refused (MESSAGE_SIGNATURE) and change nothing', () => {
    it('signed with another site’s key while claiming site-a', async () => {
        const delivery = signedDelivery(commands.cycleCompleted(), { signer: { ...SITE_B, siteId: 'site-a' } });
        await expectRefused(channelWithDiskCheck(), delivery, 'MESSAGE_SIGNATURE', /Signature does not match/);
    });

    it('a body changed after signing (a heartbeat given another VM)', async () => {
        const delivery = signedDelivery(commands.heartbeat(['vm-a1']));
        delivery.body = Buffer.from(JSON.stringify(commands.heartbeat(['vm-a1', 'vm-a2'])));
        await expectRefused(channelWithDiskCheck(), delivery, 'MESSAGE_SIGNATURE');
    });

    it('a signed envelope moved to another session', async () => {
        const delivery = signedDelivery(commands.cycleCompleted('vm-a1'));
        delivery.sessionId = 'vm-a2';
        await expectRefused(channelWithDiskCheck(), delivery, 'MESSAGE_SIGNATURE');
    });

    it.each([
        [
            'unsigned',
            (d: ProviderCommandDelivery) => delete d.applicationProperties!.signature,
            /Unsigned/,
            'MESSAGE_UNSIGNED',
        ],
        [
            'an unknown key id',
            (d: ProviderCommandDelivery) => (d.applicationProperties!.keyId = 'k9'),
            /No key k9/,
            'MESSAGE_SITE_UNKNOWN',
        ],
        [
            'an unknown site',
            (d: ProviderCommandDelivery) => (d.applicationProperties!.siteId = 'site-z'),
            /site-z/,
            'MESSAGE_SITE_UNKNOWN',
        ],
    ])('%s (%s)', async (_what, tamper, description, code) => {
        const delivery = signedDelivery(commands.register());
        tamper(delivery);
        await expectRefused(channelWithDiskCheck(), delivery, code, description);
    });

    it('a revoked key', async () => {
        const channel = channelWithDiskCheck();
        channel.keys.set('site-a/k1', { keyId: 'k1', key: SITE_A.key, revoked: true });
        await expectRefused(channel, signedDelivery(commands.register()), 'MESSAGE_KEY_REVOKED', /revoked/);
    });
});

describe('replayed and stale commands are refused and change nothing', () => {
    it('the same message id as a new message (MESSAGE_REPLAYED), while a redelivery is a harmless duplicate', async () => {
        const channel = channelWithDiskCheck();
        const first = signedDelivery(commands.register(), { messageId: 'm-1', sequenceNumber: '5' });
        expect(await handleProviderCommand(first, channel.ports)).toMatchObject({ disposition: 'processed' });
        const writes = channel.writes.length;
        const redelivered = await handleProviderCommand({ ...first, deliveryCount: 2 }, channel.ports);
        expect(redelivered).toMatchObject({ action: 'complete', disposition: 'duplicate' });
        const replay = await handleProviderCommand({ ...first, sequenceNumber: '99' }, channel.ports);
        expect(replay).toMatchObject({ action: 'deadLetter', reason: 'MESSAGE_REPLAYED' });
        expect(channel.writes.length).toBe(writes);
    });

    it.each([
        ['signed 16 minutes ago', minutes(-16), /s ago/],
        ['signed 6 minutes in the future', minutes(6), /in the future/],
    ])('%s (MESSAGE_STALE)', async (_what, signedAt, description) => {
        await expectRefused(
            channelWithDiskCheck(),
            signedDelivery(commands.cycleCompleted(), { signedAt }),
            'MESSAGE_STALE',
            description,
        );
    });
});

describe('other-site commands are refused (MESSAGE_OTHER_SITE) and change nothing', () => {
    it.each([
        ['a cycle of site-a’s VM signed by site-b', commands.cycleCompleted('vm-a1'), 'MESSAGE_OTHER_SITE'],
        ['an upload grant for site-a’s VM asked by site-b', commands.grantRequest('vm-a1'), 'MESSAGE_OTHER_SITE'],
        ['a provider error on a VM nobody registered', commands.providerError('vm-zz'), 'MESSAGE_VM_UNKNOWN'],
    ])('%s', async (_what, command, code) => {
        await expectRefused(channelWithDiskCheck(), signedDelivery(command, { signer: SITE_B }), code);
    });

    it('a heartbeat that slips one VM of another site among its own', async () => {
        const delivery = signedDelivery(commands.heartbeat(['vm-b1']), { signer: SITE_A, sessionId: 'site:site-a' });
        await expectRefused(channelWithDiskCheck(), delivery, 'MESSAGE_OTHER_SITE');
    });
});

describe('malformed commands are refused and change nothing', () => {
    it.each([
        ['a body over the limit', 'x'.repeat(MAX_COMMAND_BYTES + 1), 'MESSAGE_TOO_LARGE'],
        ['a body that is not JSON', '{"type":', 'MESSAGE_NOT_JSON'],
    ])('%s', async (_what, body, reason) => {
        const delivery = signedDelivery(commands.register());
        delivery.body = body;
        await expectRefused(channelWithDiskCheck(), delivery, reason);
    });

    it.each([
        ['a traversal disk id', { diskId: '../d0', sequence: 1, logId: 'l1' }],
        ['a traversal log id', { diskId: 'd0', sequence: 1, logId: '..%2Fl1' }],
        ['a slash in the disk id', { diskId: 'd0/../../vm-b1/d0', sequence: 1, logId: 'l1' }],
        ['a negative sequence', { diskId: 'd0', sequence: -1, logId: 'l1' }],
    ])('an upload grant request with %s (MESSAGE_INVALID)', async (_what, upload) => {
        const command = { ...commands.grantRequest('vm-a1'), uploads: [upload] };
        await expectRefused(channelWithDiskCheck(), signedDelivery(command), 'MESSAGE_INVALID');
    });
});

describe('upload grants only for the disks the VM has', () => {
    it('refuses a grant for a disk the VM does not have (UPLOAD_DISK_UNKNOWN) and issues none of the request', async () => {
        const command = {
            ...commands.grantRequest('vm-a1'),
            uploads: [
                { diskId: 'd0', sequence: 7, logId: '7aa8a253-2692-47f5-92bc-b9558d6f8901' },
                { diskId: 'nodisk', sequence: 1, logId: '7aa8a253-2692-47f5-92bc-b9558d6f8902' },
            ],
        };
        await expectRefused(
            channelWithDiskCheck(),
            signedDelivery(command),
            'UPLOAD_DISK_UNKNOWN',
            /VM vm-a1 has no disk nodisk \(its disks: d0, d1\)/,
        );
    });

    it('refuses a grant for a VM of the site that has no protected disks recorded', async () => {
        await expectRefused(
            channelWithDiskCheck(),
            signedDelivery(commands.grantRequest('vm-a2')),
            'UPLOAD_DISK_UNKNOWN',
            /no protected disks/,
        );
    });

    it('issues grants for the VM’s own disks', async () => {
        const channel = channelWithDiskCheck();
        const outcome = await handleProviderCommand(signedDelivery(commands.grantRequest('vm-a1')), channel.ports);
        expect(outcome).toMatchObject({ action: 'complete', disposition: 'processed' });
        expect(channel.writes.map((w) => w.kind)).toEqual(['grant', 'publish', 'remember']);
    });
});

describe('the app’s provider channel checks disks with the protected-items table (Azurite)', () => {
    const scope: StateScope = {
        conn: connectionFromString(process.env.AZURITE_CONNECTION_STRING!),
        tablePrefix: `secgr${Date.now().toString(36)}`,
    };
    let restore: (() => void)[] = [];

    beforeAll(async () => {
        process.env.STATE_TABLE_PREFIX = scope.tablePrefix;
        restore.push(() => delete process.env.STATE_TABLE_PREFIX);
        restore.push(setPorts({ storage: () => scope.conn, clock: { now: () => new Date(NOW) } }));
        const item: ProtectedItem = {
            vmId: 'vm-a1',
            siteId: 'site-a',
            vmName: 'vm-a1',
            generation: 2,
            policyName: 'gold',
            disks: [{ diskId: 'd0', sizeBytes: 1 << 30, logicalSectorBytes: 512, isOsDisk: true }],
            protectionState: 'Protected',
            protectionStateDescription: 'Protected',
            resynchronizationState: 'None',
            replicationHealth: 'Normal',
            healthReasons: [],
            createdAt: NOW.toISOString(),
            updatedAt: NOW.toISOString(),
        };
        await createProtectedItem(scope, item);
    });
    afterAll(() => {
        for (const r of restore.reverse()) r();
        restore = [];
    });

    it('refuses replica-logs/site-a/vm-a1/nodisk and grants replica-logs/site-a/vm-a1/d0', async () => {
        const fake = fakeChannel();
        const { grants: _fakeGrants, lifecycle, ...rest } = fake.ports;
        const undo = setProviderChannel({ ...rest, lifecycle });
        try {
            const ports = providerCommandPorts(() => ({ raiseEvent: async () => undefined }), fake.ports.log);
            const refused = await handleProviderCommand(
                signedDelivery({
                    ...commands.grantRequest('vm-a1'),
                    uploads: [{ diskId: 'nodisk', sequence: 3, logId: '7aa8a253-2692-47f5-92bc-b9558d6f8903' }],
                }),
                ports,
            );
            expect(refused).toMatchObject({ action: 'deadLetter', reason: 'UPLOAD_DISK_UNKNOWN' });
            expect(fake.writes).toEqual([]);

            const granted = await handleProviderCommand(
                signedDelivery({
                    ...commands.grantRequest('vm-a1'),
                    uploads: [{ diskId: 'd0', sequence: 3, logId: '7aa8a253-2692-47f5-92bc-b9558d6f8904' }],
                }),
                ports,
            );
            expect(granted).toMatchObject({ action: 'complete', disposition: 'processed' });
            const published = fake.writes.find((w) => w.kind === 'publish');
            expect(JSON.stringify(published)).toContain('replica-logs/site-a/vm-a1/d0/');
        } finally {
            undo();
        }
    });
});
