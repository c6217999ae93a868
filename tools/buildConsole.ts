import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve, sep } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * Bundles the operator console (console/src, Preact) into dist/console: one minified script and one stylesheet
 * named by their content hash, and index.html that loads them. `npm run build` runs it after tsc; the app's
 * `console` HTTP function serves the folder (functions/console.ts). Prints the sizes.
 */

/** The repository: tools/ in the sources, dist/tools/ once compiled. */
const ROOT = __dirname.split(sep).includes('dist') ? resolve(__dirname, '..', '..') : resolve(__dirname, '..');

export interface ConsoleBuild {
    outDir: string;
    files: { name: string; bytes: number; gzipBytes: number }[];
}

export async function buildConsole(root = ROOT, outDir = join(root, 'dist', 'console')): Promise<ConsoleBuild> {
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir, { recursive: true });
    const result = await build({
        absWorkingDir: root,
        entryPoints: {
            app: join(root, 'console', 'src', 'main.tsx'),
            style: join(root, 'console', 'src', 'style.css'),
        },
        bundle: true,
        minify: true,
        format: 'esm',
        target: ['es2022'],
        jsx: 'automatic',
        jsxImportSource: 'preact',
        entryNames: '[name]-[hash]',
        outdir: outDir,
        metafile: true,
        legalComments: 'none',
        logLevel: 'silent',
    });
    const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
    const script = outputs.find((n) => n.startsWith('app-') && n.endsWith('.js'));
    const style = outputs.find((n) => n.startsWith('style-') && n.endsWith('.css'));
    if (!script || !style)
        throw new Error(`console build: expected app-*.js and style-*.css, got ${outputs.join(', ')}`);
    const html = readFileSync(join(root, 'console', 'index.html'), 'utf8')
        .replace('%SCRIPT%', script)
        .replace('%STYLE%', style);
    writeFileSync(join(outDir, 'index.html'), html);
    // esbuild writes a stub for the CSS entry's empty JavaScript side: keep only what the page loads.
    for (const name of readdirSync(outDir)) {
        if (![script, style, 'index.html'].includes(name)) rmSync(join(outDir, name));
    }
    const files = [script, style, 'index.html'].map((name) => {
        const bytes = readFileSync(join(outDir, name));
        return { name, bytes: statSync(join(outDir, name)).size, gzipBytes: gzipSync(bytes).byteLength };
    });
    return { outDir, files };
}

if (require.main === module) {
    buildConsole().then(
        ({ outDir, files }) => {
            const total = files.reduce((a, f) => a + f.bytes, 0);
            const gz = files.reduce((a, f) => a + f.gzipBytes, 0);
            process.stdout.write(
                `console: ${files.map((f) => `${f.name} ${f.bytes} B`).join(', ')}; ${total} B, ${gz} B gzipped, in ${outDir}\n`,
            );
        },
        (err: unknown) => {
            process.stderr.write(`console build failed: ${err instanceof Error ? err.message : String(err)}\n`);
            process.exit(1);
        },
    );
}
