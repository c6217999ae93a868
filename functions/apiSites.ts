import { app, HttpRequest, HttpResponseInit } from '@azure/functions';
import { HvrError } from '../shared/errors';
import { IssuedSiteKey } from '../shared/contracts/providerSites';
import { ports } from '../shared/ports';
import { StateScope, stateScope } from '../shared/state/protectedItems';
import { getSite, listSites, registerSite, validateSiteRegistration } from '../shared/state/sites';
import { jsonResponse, providerSites, readJsonBody, routeParam, withErrors } from './apiHttp';
import { apiAuthLevel } from './apiCaller';

/** `/api/sites`: Hyper-V sites and VMM servers whose providers replicate to us. */

export async function sites(request: HttpRequest): Promise<HttpResponseInit> {
    const scope = stateScope();
    if (request.method === 'GET') return jsonResponse(200, { value: await listSites(scope) });
    const registration = validateSiteRegistration(await readJsonBody(request));
    const { site, created } = await registerSite(scope, registration, ports().clock.now().toISOString());
    const siteKey = created ? await issueSiteKey(scope, site) : undefined;
    return jsonResponse(created ? 201 : 200, siteKey ? { ...site, siteKey } : site, {
        Location: `/api/sites/${encodeURIComponent(site.siteId)}`,
    });
}

/**
 * A new site gets the key its provider signs commands with (docs/provider-contract.md). It is returned once, in
 * the registration's response; a site registered again keeps its key.
 */
async function issueSiteKey(
    scope: StateScope,
    site: { siteId: string; name: string; timeZone: string },
): Promise<IssuedSiteKey | undefined> {
    try {
        return await providerSites(scope).registerSite(site, ports().clock.now());
    } catch (err) {
        if (err instanceof HvrError && err.code === 'CONFLICT') return undefined;
        throw err;
    }
}

export async function site(request: HttpRequest): Promise<HttpResponseInit> {
    const siteId = routeParam(request, 'siteId');
    const scope = stateScope();
    if (request.method === 'GET') {
        const found = await getSite(scope, siteId);
        if (!found) throw new HvrError('NOT_FOUND', `Site ${siteId} is not registered.`);
        return jsonResponse(200, found);
    }
    const registration = validateSiteRegistration(await readJsonBody(request), siteId);
    const { site: stored, created } = await registerSite(scope, registration, ports().clock.now().toISOString());
    const siteKey = created ? await issueSiteKey(scope, stored) : undefined;
    return jsonResponse(created ? 201 : 200, siteKey ? { ...stored, siteKey } : stored);
}

/** The site's providers: kind, host, version, when each registered and last sent a heartbeat. */
export async function siteProviders(request: HttpRequest): Promise<HttpResponseInit> {
    const siteId = routeParam(request, 'siteId');
    const scope = stateScope();
    if (!(await getSite(scope, siteId))) throw new HvrError('NOT_FOUND', `Site ${siteId} is not registered.`);
    return jsonResponse(200, { value: await providerSites(scope).listProviders(siteId) });
}

/** Function keys, or none behind App Service authentication (apiCaller.ts). */
const API_AUTH_LEVEL = apiAuthLevel();

app.http('apiSites', {
    methods: ['GET', 'POST'],
    authLevel: API_AUTH_LEVEL,
    route: 'sites',
    handler: withErrors(sites),
});
app.http('apiSite', {
    methods: ['GET', 'PUT'],
    authLevel: API_AUTH_LEVEL,
    route: 'sites/{siteId}',
    handler: withErrors(site),
});
app.http('apiSiteProviders', {
    methods: ['GET'],
    authLevel: API_AUTH_LEVEL,
    route: 'sites/{siteId}/providers',
    handler: withErrors(siteProviders),
});
