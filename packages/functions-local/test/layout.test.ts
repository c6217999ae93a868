import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';

// The package's shape: no import cycle among its source files (type-only imports included: a cycle of types is
// still two modules that cannot be understood apart), and no TypeScript file over 500 lines.

const PACKAGE = path.resolve(__dirname, '..');
const SRC = path.join(PACKAGE, 'src');
const MAX_LINES = 500;

function tsFiles(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : tsFiles(full);
        return entry.name.endsWith('.ts') ? [full] : [];
    });
}

/** The package files a source file imports, re-exports or requires (relative specifiers only). */
function localImports(file: string): string[] {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    return info.importedFiles
        .map((ref) => ref.fileName)
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => {
            const base = path.resolve(path.dirname(file), spec);
            const target = [`${base}.ts`, path.join(base, 'index.ts')].find((f) => fs.existsSync(f));
            if (!target)
                throw new Error(`${path.relative(PACKAGE, file)} imports ${spec}, which is no file of the package`);
            return target;
        });
}

/** Every cycle found by a depth-first walk, each as the files around it. */
function importCycles(files: string[]): string[][] {
    const graph = new Map(files.map((f) => [f, localImports(f)]));
    const cycles: string[][] = [];
    const done = new Set<string>();
    const onPath: string[] = [];
    const visit = (file: string) => {
        const at = onPath.indexOf(file);
        if (at >= 0) {
            cycles.push([...onPath.slice(at), file].map((f) => path.relative(SRC, f)));
            return;
        }
        if (done.has(file)) return;
        onPath.push(file);
        for (const next of graph.get(file) ?? []) visit(next);
        onPath.pop();
        done.add(file);
    };
    for (const file of files) visit(file);
    return cycles;
}

describe('the package layout', () => {
    it('has no import cycle among its source files', () => {
        expect(importCycles(tsFiles(SRC))).toEqual([]);
    });

    it('finds a cycle when there is one (the walk itself)', () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cycle-'));
        try {
            fs.writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b';\nexport const a = b;\n");
            fs.writeFileSync(path.join(dir, 'b.ts'), "export type { A } from './c';\nexport const b = 1;\n");
            fs.writeFileSync(path.join(dir, 'c.ts'), "import type { a } from './a';\nexport type A = typeof a;\n");
            const cycles = importCycles(tsFiles(dir)).map((c) => c.map((f) => path.basename(f)));
            expect(cycles).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it(`has no TypeScript file over ${MAX_LINES} lines`, () => {
        const long = tsFiles(PACKAGE)
            .map((file) => ({
                file: path.relative(PACKAGE, file),
                lines: fs.readFileSync(file, 'utf8').split('\n').length - 1,
            }))
            .filter((f) => f.lines > MAX_LINES);
        expect(long).toEqual([]);
    });
});
