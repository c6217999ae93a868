import { app, HttpRequest, HttpResponseInit } from '@azure/functions';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, sep } from 'node:path';
import { CONSOLE_ROUTE } from '../shared/consoleRoute';

/**
 * The operator console: the static bundle `npm run build` writes to dist/console (tools/buildConsole.ts), served
 * from the app itself under /api/console/ so that it shares the API's origin. The files hold no data and no key,
 * so the route is anonymous; the console signs in to the API with the function key from its URL's fragment
 * (locally) or with the App Service authentication session (Azure). See docs/console.md.
 */

const CONTENT_TYPES: Record<string, string> = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.ico': 'image/x-icon',
    '.json': 'application/json',
};

/**
 * Everything comes from this origin; the page is never framed; scripts and styles only from files (no inline
 * code), and the API is the only place it connects to.
 */
export const CONSOLE_CSP =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Where the bundle is: dist/console beside dist/functions (also when the sources run under a test runner). */
export function consoleAssetsDir(): string {
    const inDist = __dirname.split(sep).includes('dist');
    return inDist ? join(__dirname, '..', 'console') : join(__dirname, '..', 'dist', 'console');
}

interface Asset {
    body: Buffer;
    contentType: string;
    immutable: boolean;
}

let cache: { dir: string; assets: Map<string, Asset> } | undefined;

/** The bundle's files by name, read once: a request can only name one of them (no path reaches the disk). */
function assets(dir: string): Map<string, Asset> {
    if (cache?.dir === dir) return cache.assets;
    const map = new Map<string, Asset>();
    if (existsSync(dir)) {
        for (const name of readdirSync(dir)) {
            const type = CONTENT_TYPES[extname(name)];
            if (type === undefined) continue;
            // Bundles carry their content hash in the name (app-3f2a1b.js): cached for good. index.html: never.
            map.set(name, {
                body: readFileSync(join(dir, name)),
                contentType: type,
                immutable: /-[A-Z0-9]{8,}\.(js|css)$/.test(name),
            });
        }
    }
    if (map.size > 0) cache = { dir, assets: map };
    return map;
}

function notFound(message: string, status = 404): HttpResponseInit {
    return {
        status,
        body: message,
        headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' },
    };
}

export async function consoleAsset(request: HttpRequest): Promise<HttpResponseInit> {
    const path = request.params.path ?? '';
    const url = new URL(request.url);
    if (path === '' && !url.pathname.endsWith('/')) {
        // Relative asset URLs need the trailing slash.
        return { status: 308, headers: { Location: `${url.pathname}/${url.search}` } };
    }
    const files = assets(consoleAssetsDir());
    if (files.size === 0) return notFound('The console is not built: run npm run build.', 503);
    const asset = files.get(path === '' ? 'index.html' : path);
    if (!asset) return notFound(`No console file ${JSON.stringify(path)}.`);
    return {
        status: 200,
        body: request.method === 'HEAD' ? undefined : asset.body,
        headers: {
            'Content-Type': asset.contentType,
            'Content-Length': String(asset.body.byteLength),
            'Cache-Control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
            'Content-Security-Policy': CONSOLE_CSP,
            'X-Content-Type-Options': 'nosniff',
            'Referrer-Policy': 'no-referrer',
            'X-Frame-Options': 'DENY',
        },
    };
}

app.http('console', {
    methods: ['GET', 'HEAD'],
    authLevel: 'anonymous',
    route: `${CONSOLE_ROUTE}/{*path}`,
    handler: consoleAsset,
});
