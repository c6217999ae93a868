import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LocalPlatformError } from '../errors';

/** Expands `{a,b}` alternatives (not nested), as in package.json `main` globs. */
export function expandBraces(pattern: string): string[] {
    const m = /\{([^{}]*)\}/.exec(pattern);
    if (!m) return [pattern];
    const head = pattern.slice(0, m.index);
    const tail = pattern.slice(m.index + m[0].length);
    return m[1]!.split(',').flatMap((alt) => expandBraces(head + alt + tail));
}

function segmentRegex(segment: string): RegExp {
    const source = segment
        .split('')
        .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('');
    return new RegExp(`^${source}$`);
}

/** Files under `root` matching a glob of `*`, `?` and `{a,b}` (no `**`), sorted. */
export function globFiles(root: string, pattern: string): string[] {
    const out = new Set<string>();
    for (const expanded of expandBraces(pattern)) {
        const segments = expanded.split('/').filter((s) => s !== '' && s !== '.');
        let dirs = [root];
        segments.forEach((segment, i) => {
            const last = i === segments.length - 1;
            const next: string[] = [];
            for (const dir of dirs) {
                if (!/[*?]/.test(segment)) {
                    const candidate = join(dir, segment);
                    if (existsSync(candidate)) next.push(candidate);
                    continue;
                }
                if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
                const re = segmentRegex(segment);
                for (const name of readdirSync(dir)) if (re.test(name)) next.push(join(dir, name));
            }
            dirs = last ? next.filter((p) => statSync(p).isFile()) : next.filter((p) => statSync(p).isDirectory());
        });
        for (const file of dirs) out.add(file);
    }
    return [...out].sort();
}

/**
 * The modules the Functions worker would load for the app at `appRoot`: the files its package.json `main`
 * names (a glob in the v4 model, ours is `dist/{functions,orchestrations}/*.js`).
 */
export function appModules(appRoot: string): string[] {
    const packagePath = resolve(appRoot, 'package.json');
    if (!existsSync(packagePath)) {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `No package.json in ${resolve(appRoot)}: pass --app <folder of the app>.`,
        );
    }
    const pkg = JSON.parse(readFileSync(packagePath, 'utf8')) as { main?: unknown };
    if (typeof pkg.main !== 'string' || pkg.main === '') {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `${packagePath} has no "main": the Functions worker loads the app from it.`,
        );
    }
    const files = globFiles(resolve(appRoot), pkg.main);
    if (files.length === 0) {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `package.json "main" (${pkg.main}) matches no file under ${resolve(appRoot)}: run \`npm run build\` first.`,
        );
    }
    return files;
}
