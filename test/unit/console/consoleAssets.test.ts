import { HttpRequest } from '@azure/functions';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { consoleAsset, consoleAssetsDir, CONSOLE_CSP } from '../../../functions/console';
import { consoleLine, consoleUrl } from '../../../shared/consoleRoute';
import { buildConsole } from '../../../tools/buildConsole';

const ROOT = resolve(__dirname, '..', '..', '..');

function get(
    path: string,
    url = `http://127.0.0.1:7071/api/console/${path}`,
): Promise<{
    status?: number;
    headers?: Record<string, string>;
    body?: unknown;
}> {
    return consoleAsset(new HttpRequest({ method: 'GET', url, params: path === '' ? {} : { path } })) as never;
}

describe('the console bundle, served by the app', () => {
    let files: string[];
    beforeAll(async () => {
        const built = await buildConsole(ROOT);
        expect(built.outDir).toBe(consoleAssetsDir());
        files = readdirSync(built.outDir);
    }, 120_000);

    it('builds one hashed script, one hashed stylesheet and the page that loads them, nothing from elsewhere', async () => {
        const script = files.find((f) => /^app-[A-Z0-9]+\.js$/.test(f));
        const style = files.find((f) => /^style-[A-Z0-9]+\.css$/.test(f));
        expect(script).toBeDefined();
        expect(style).toBeDefined();
        expect(files.sort()).toEqual([script, 'index.html', style].sort());
        const page = await get('');
        expect(page.status).toBe(200);
        const html = String(page.body);
        expect(html).toContain(`src="./${script}"`);
        expect(html).toContain(`href="./${style}"`);
        expect(html).not.toMatch(/https?:\/\//);
        expect(page.headers).toMatchObject({
            'Content-Type': 'text/html; charset=utf-8',
            'Cache-Control': 'no-cache',
            'Content-Security-Policy': CONSOLE_CSP,
            'X-Frame-Options': 'DENY',
        });
        const js = await get(script!);
        expect(js.headers?.['Cache-Control']).toBe('public, max-age=31536000, immutable');
        expect(js.headers?.['Content-Type']).toBe('text/javascript; charset=utf-8');
    });

    it('redirects the bare route to its folder and serves only the bundle’s own files', async () => {
        const bare = await get('', 'http://127.0.0.1:7071/api/console');
        expect(bare).toMatchObject({ status: 308, headers: { Location: '/api/console/' } });
        for (const path of ['../package.json', '..%2Fhost.json', 'missing.js', 'index.html/..', '/etc/passwd']) {
            expect((await get(path)).status).toBe(404);
        }
    });

    it('opens signed in from the printed line: the key rides in the fragment, never in the path or query', () => {
        expect(consoleUrl('http://127.0.0.1:7071/api', 'k/ey=1')).toBe(
            'http://127.0.0.1:7071/api/console/#key=k%2Fey%3D1',
        );
        expect(consoleLine('http://127.0.0.1:7071/api/', 'abc')).toBe(
            '  Console         http://127.0.0.1:7071/api/console/#key=abc',
        );
    });
});
