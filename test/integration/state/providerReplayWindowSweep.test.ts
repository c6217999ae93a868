import { providerSites } from '../../../functions/apiHttp';
import { sweepReplayWindows } from '../../../functions/providerReplayWindowSweep';
import { registerSite } from '../../../shared/state/sites';
import { StateScope } from '../../../shared/state/protectedItems';
import { testStorage, uniqueName } from '../../support/azurite';

describe('the provider replay-window sweep', () => {
    it('forgets message ids older than twice the freshness window and keeps the recent ones', async () => {
        const scope: StateScope = { conn: testStorage(), tablePrefix: uniqueName('t') };
        const now = new Date('2026-03-01T12:00:00Z');
        await registerSite(
            scope,
            { siteId: 'paris', name: 'Paris', kind: 'HyperVSite', timeZone: 'Europe/Paris' },
            now.toISOString(),
        );
        const table = providerSites(scope);
        await table.remember('paris', 'old', { seenAt: new Date(now.getTime() - 3 * 3600_000) });
        await table.remember('paris', 'recent', { seenAt: new Date(now.getTime() - 60_000) });

        expect(await sweepReplayWindows(scope, now)).toEqual({ paris: 1 });
        expect(await table.seen('paris', 'old')).toBeUndefined();
        expect(await table.seen('paris', 'recent')).toBeDefined();
    });
});
