import { ProviderSitesTable } from '../../../shared/contracts/providerSites';
import { handleProviderCommand } from '../../../shared/contracts/commandHandler';
import { signCommand } from '../../../shared/contracts/signature';
import { testStorage, uniqueName } from '../../support/azurite';
import { commands, fakeChannel } from '../../unit/contracts/fakeChannel';

const at = new Date('2025-01-15T10:30:00Z');

describe('ProviderSitesTable against Azurite', () => {
    let sites: ProviderSitesTable;

    beforeEach(() => {
        sites = new ProviderSitesTable(testStorage(), { sites: uniqueName('sites'), messageIds: uniqueName('msgids') });
    });

    it('registers a site once, issuing a 32-byte key under a key id', async () => {
        const issued = await sites.registerSite({ siteId: 'site-paris', name: 'Paris', timeZone: 'Europe/Paris' }, at);
        expect(Buffer.from(issued.key, 'base64')).toHaveLength(32);
        const key = await sites.siteKey('site-paris', issued.keyId);
        expect(key).toEqual({ keyId: issued.keyId, key: Buffer.from(issued.key, 'base64'), revoked: false });
        expect(await sites.getSite('site-paris')).toMatchObject({ name: 'Paris', activeKeyId: issued.keyId });
        await expect(
            sites.registerSite({ siteId: 'site-paris', name: 'Again', timeZone: 'UTC' }, at),
        ).rejects.toMatchObject({ code: 'CONFLICT' });
    });

    it('rotates: the new key becomes active, the old one verifies until revoked', async () => {
        const first = await sites.registerSite({ siteId: 'site-lyon', name: 'Lyon', timeZone: 'Europe/Paris' }, at);
        const second = await sites.rotateSiteKey('site-lyon', new Date(at.getTime() + 1000));
        expect(second.keyId).not.toBe(first.keyId);
        expect((await sites.getSite('site-lyon'))!.activeKeyId).toBe(second.keyId);
        expect((await sites.siteKey('site-lyon', first.keyId))!.revoked).toBe(false);
        await sites.revokeSiteKey('site-lyon', first.keyId, at);
        expect((await sites.siteKey('site-lyon', first.keyId))!.revoked).toBe(true);
        expect((await sites.siteKey('site-lyon', second.keyId))!.revoked).toBe(false);
    });

    it('assigns a VM to one site only', async () => {
        await sites.assignVm('vm-1', 'site-a', at);
        await sites.assignVm('vm-1', 'site-a', at);
        await expect(sites.assignVm('vm-1', 'site-b', at)).rejects.toMatchObject({ code: 'CONFLICT' });
        expect(await sites.siteOf('vm-1')).toBe('site-a');
        await sites.releaseVm('vm-1');
        expect(await sites.siteOf('vm-1')).toBeUndefined();
    });

    it('remembers processed message ids per site and prunes the old ones', async () => {
        await sites.remember('site-a', 'm/1', { seenAt: at, sequenceNumber: '7' });
        await sites.remember('site-a', 'm2', { seenAt: new Date(at.getTime() + 3_600_000) });
        expect(await sites.seen('site-a', 'm/1')).toEqual({ seenAt: at, sequenceNumber: '7' });
        expect(await sites.seen('site-b', 'm/1')).toBeUndefined();
        expect(await sites.pruneReplayWindow('site-a', new Date(at.getTime() + 60_000))).toBe(1);
        expect(await sites.seen('site-a', 'm/1')).toBeUndefined();
        expect(await sites.seen('site-a', 'm2')).toBeDefined();
    });

    it('passes a heartbeat on to the monitors at most once per interval, recording every one', async () => {
        const interval = 300_000;
        const later = (ms: number) => new Date(at.getTime() + ms);
        expect(await sites.recordHeartbeat('site-a', 'hv-01', at, 3, 0, interval)).toBe(true);
        expect(await sites.recordHeartbeat('site-a', 'hv-01', later(5_000), 3, 10, interval)).toBe(false);
        expect(await sites.recordHeartbeat('site-a', 'hv-02', later(5_000), 1, 0, interval)).toBe(true);
        expect(await sites.recordHeartbeat('site-a', 'hv-01', later(interval - 1), 3, 0, interval)).toBe(false);
        expect(await sites.recordHeartbeat('site-a', 'hv-01', later(interval), 3, 0, interval)).toBe(true);
        expect(await sites.recordHeartbeat('site-a', 'hv-01', later(interval + 5_000), 3, 0, interval)).toBe(false);
        const providers = await sites.listProviders('site-a');
        expect(providers.find((p) => p.providerId === 'hv-01')).toMatchObject({
            lastHeartbeatAt: later(interval + 5_000).toISOString(),
            vmCount: 3,
        });
    });

    it('drives the command handler for real: a registered site acts on its VM, another site cannot', async () => {
        const paris = await sites.registerSite({ siteId: 'site-p', name: 'P', timeZone: 'UTC' }, at);
        const lyon = await sites.registerSite({ siteId: 'site-l', name: 'L', timeZone: 'UTC' }, at);
        await sites.assignVm('vm-a1', 'site-p', at);
        const channel = fakeChannel();
        const ports = {
            ...channel.ports,
            keys: sites,
            vms: sites,
            replay: sites,
            presence: sites,
            clock: { now: () => at },
        };
        const send = (signer: { siteId: string; keyId: string; key: string }, messageId: string) => {
            const signed = signCommand(
                commands.cycleCompleted('vm-a1'),
                { siteId: signer.siteId, keyId: signer.keyId, key: Buffer.from(signer.key, 'base64') },
                { messageId, sessionId: 'vm-a1', signedAt: at },
            );
            return handleProviderCommand(
                { ...signed, sequenceNumber: messageId, applicationProperties: { ...signed.applicationProperties } },
                ports,
            );
        };
        expect(await send(lyon, 'l-1')).toMatchObject({ action: 'deadLetter', reason: 'MESSAGE_OTHER_SITE' });
        expect(await send(paris, 'p-1')).toMatchObject({ action: 'complete', disposition: 'processed' });
        expect(await sites.seen('site-p', 'p-1')).toBeDefined();
        expect(await sites.seen('site-l', 'l-1')).toBeUndefined();
        expect(await send(paris, 'p-1')).toMatchObject({ action: 'complete', disposition: 'duplicate' });
    });
});
