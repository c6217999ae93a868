import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO_ROOT } from './infraModel';

/** Every file under a folder, relative to it. */
function filesUnder(dir: string): string[] {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

interface PackageJson {
    scripts?: Record<string, string>;
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
}

const script = join(REPO_ROOT, 'infra', 'tools', 'package.sh');
const rootPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as PackageJson;

/**
 * The deployment package (infra/tools/package.sh, azd's prepackage hook) holds only what runs: built here without
 * node_modules (that part is `npm ci --omit=dev`, checked against the lockfile below).
 */
describe('the deployment package', () => {
    let out: string;
    let files: string[];

    beforeAll(() => {
        // The package is made from dist/: build it when it is missing or older than a source it compiles.
        const stale =
            ['functions', 'orchestrations', 'shared'].some((dir) =>
                readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
                    .filter((f) => f.endsWith('.ts'))
                    .some((f) => {
                        const built = join(REPO_ROOT, 'dist', dir, f.replace(/\.ts$/, '.js'));
                        return (
                            !existsSync(built) || statSync(built).mtimeMs < statSync(join(REPO_ROOT, dir, f)).mtimeMs
                        );
                    }),
            ) || !existsSync(join(REPO_ROOT, 'dist', 'console', 'index.html'));
        if (stale) {
            const build = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8' });
            if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
        }
        out = mkdtempSync(join(tmpdir(), 'package-'));
        const run = spawnSync('bash', [script, '--no-install', '--no-build'], {
            env: { ...process.env, PACKAGE_DIR: out },
            encoding: 'utf8',
            timeout: 60_000,
        });
        if (run.status !== 0) throw new Error(`package.sh failed:\n${run.stdout}${run.stderr}`);
        files = filesUnder(out);
    }, 180_000);

    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it('holds the compiled app, host.json and the package files', () => {
        expect(files).toEqual(expect.arrayContaining(['host.json', 'package.json', 'package-lock.json']));
        for (const part of ['functions', 'orchestrations', 'shared', 'console']) {
            expect(files.some((f) => f.startsWith(`dist/${part}/`) && f.endsWith('.js'))).toBe(true);
        }
        // The console the app serves: its page and what the page loads.
        expect(files).toContain('dist/console/index.html');
        // Every function file the app registers (package.json main) is there.
        const registered = readdirSync(join(REPO_ROOT, 'functions')).filter((f) => f.endsWith('.ts'));
        for (const source of registered) expect(files).toContain(`dist/functions/${source.replace(/\.ts$/, '.js')}`);
    });

    it('keeps out tests, benchmarks, docs, infra, local tools, TypeScript sources and source maps', () => {
        const outside = files.filter((f) => !/^dist\/(functions|orchestrations|shared|console)\//.test(f));
        expect(outside.sort()).toEqual(['host.json', 'package-lock.json', 'package.json']);
        expect(files.filter((f) => /\.(ts|map)$/.test(f))).toEqual([]);
        for (const dir of [
            'test',
            'bench',
            'docs',
            'infra',
            'tools',
            'scripts',
            'dist/tools',
            'dist/bench',
            'dist/test',
        ]) {
            expect(files.filter((f) => f.startsWith(`${dir}/`))).toEqual([]);
        }
    });

    it('ships a package.json without scripts, so nothing rebuilds or runs a lifecycle script there', () => {
        const shipped = JSON.parse(readFileSync(join(out, 'package.json'), 'utf8')) as PackageJson;
        expect(shipped.scripts).toBeUndefined();
        expect(shipped.dependencies).toEqual(rootPackage.dependencies);
    });

    it('installs production dependencies only, none of the dev dependencies', () => {
        expect(readFileSync(script, 'utf8')).toMatch(/npm ci --omit=dev /);
        // What `npm ci --omit=dev` installs: the lockfile entries not marked dev.
        const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
            packages: Record<string, { dev?: boolean }>;
        };
        const installed = Object.entries(lock.packages)
            .filter(([path, entry]) => path.startsWith('node_modules/') && !entry.dev)
            .map(([path]) => path.replace(/^.*node_modules\//, ''));
        // Test and build tools never ship. (A dev dependency that a production package also needs, such as rhea
        // under @azure/service-bus, is installed for that package: the lockfile does not mark it dev.)
        const tools = [
            'azurite',
            'jest',
            'ts-jest',
            'typescript',
            'eslint',
            'prettier',
            'fast-check',
            'typescript-eslint',
        ];
        for (const tool of tools) expect(Object.keys(rootPackage.devDependencies ?? {})).toContain(tool);
        expect(installed.filter((name) => tools.includes(name))).toEqual([]);
        for (const name of Object.keys(rootPackage.dependencies ?? {})) expect(installed).toContain(name);
    });
});
