import { HttpRequest } from '@azure/functions';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
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

    it('is the size docs/console.md states, within 5 % (update the statement when the console grows)', () => {
        const dir = consoleAssetsDir();
        const doc = readFileSync(join(ROOT, 'docs', 'console.md'), 'utf8').replace(/\s+/g, ' ');
        const stated =
            /`app-\*\.js` ([\d,]+) B, `style-\*\.css` ([\d,]+) B, `index\.html` ([\d,]+) B — ([\d,]+) B, ([\d,]+) B gzipped/.exec(
                doc,
            );
        expect(stated).not.toBeNull();
        const [app, style, page, total, gzipped] = stated!.slice(1).map((n) => Number(n.replace(/,/g, '')));
        const size = (prefix: string) =>
            statSync(
                join(
                    dir,
                    files.find((f) => f.startsWith(prefix))!,
                ),
            ).size;
        const built = {
            app: size('app-'),
            style: size('style-'),
            page: size('index.html'),
            gzipped: files.reduce((sum, f) => sum + gzipSync(readFileSync(join(dir, f))).byteLength, 0),
        };
        expect(app! + style! + page!).toBe(total);
        for (const [documented, real] of [
            [app!, built.app],
            [style!, built.style],
            [page!, built.page],
            [gzipped!, built.gzipped],
        ] as const) {
            expect(Math.abs(documented - real) / real).toBeLessThan(0.05);
        }
    });
});
