import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { API_AUTHENTICATION_MODES, API_ROLES } from '../../../functions/apiCaller';
import { CONSOLE_ROUTE } from '../../../shared/consoleRoute';
import { RPO_HISTORY_RETENTION_HOURS, RPO_HISTORY_TABLE } from '../../../shared/state/rpoHistory';
import { AUTH_EXCLUDED_PATHS } from '../infra/appChecks';
import { BROWSER_REQUIRED_SETTING, CHROMIUM_ARGS } from '../../support/browser';

const ROOT = resolve(__dirname, '..', '..', '..');
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');
const doc = read('docs/console.md');

/** docs/console.md (and the files it leans on) restate names the code owns: they must stay the same. */
describe('docs/console.md says what the console and its API do', () => {
    it('names the app roles, the authentication modes and every path kept outside the sign-in', () => {
        for (const role of Object.values(API_ROLES)) expect(doc).toContain(`\`${role}\``);
        for (const mode of API_AUTHENTICATION_MODES) expect(doc).toContain(`API_AUTHENTICATION=${mode}`);
        for (const path of AUTH_EXCLUDED_PATHS) expect(doc).toContain(`\`${path}\``);
        // And infra lists the same paths.
        const main = read('infra/main.bicep');
        for (const path of AUTH_EXCLUDED_PATHS) expect(main).toContain(`'${path}'`);
    });

    it('names the console route, the RPO table and its retention, and the new read routes (also in api.md)', () => {
        expect(doc).toContain(`/api/${CONSOLE_ROUTE}/`);
        expect(doc).toContain(`\`${RPO_HISTORY_TABLE}\``);
        expect(doc).toContain(`kept ${RPO_HISTORY_RETENTION_HOURS} hours`);
        const api = read('docs/api.md');
        for (const route of ['/rpoHistory', '/replicaDisks', '/events', '/providers', `/api/${CONSOLE_ROUTE}/`]) {
            expect(api).toContain(route);
        }
    });

    it('gives the browser launch flags and the setting CI sets, which .ci/run sets and installs chromium for', () => {
        for (const flag of CHROMIUM_ARGS) expect(doc.replace(/\n/g, ' ')).toContain(flag);
        expect(doc).toContain(`${BROWSER_REQUIRED_SETTING}=1`);
        const ci = read('.ci/run');
        expect(ci).toContain(`export ${BROWSER_REQUIRED_SETTING}=1`);
        expect(ci).toContain('apt-get install -y chromium');
    });

    it('shows screenshots that exist, and the pinned framework and bundler it names', () => {
        const images = [...doc.matchAll(/\]\(([^)]+\.png)\)/g)].map((m) => m[1]!);
        expect(images.length).toBeGreaterThanOrEqual(4);
        for (const image of images) expect(existsSync(join(ROOT, 'docs', image))).toBe(true);
        const pkg = JSON.parse(read('package.json')) as { devDependencies: Record<string, string> };
        for (const name of ['preact', 'esbuild', 'playwright-core']) {
            expect(pkg.devDependencies[name]).toMatch(/^\d+\.\d+\.\d+$/);
        }
        expect(doc).toContain(`Preact ${pkg.devDependencies.preact!.split('.')[0]}`);
        expect(doc).toContain(`esbuild ${pkg.devDependencies.esbuild!.split('.').slice(0, 2).join('.')}`);
        expect(readdirSync(join(ROOT, 'console', 'src')).length).toBeGreaterThan(0);
    });
});
