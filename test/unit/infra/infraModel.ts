import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { BicepFile, BicepModule, bicepFilesUnder } from '../../support/bicep';

/** The repository root, seen from this file. */
export const REPO_ROOT = resolve(__dirname, '..', '..', '..');

/** What the app deploys: the settings it reads must all reach Azure. */
const APP_SOURCE_DIRS = ['shared', 'functions', 'orchestrations'];

function appSourcePaths(root: string): string[] {
    return APP_SOURCE_DIRS.flatMap((dir) =>
        readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
            .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
            .map((name) => `${dir}/${name.split('\\').join('/')}`),
    );
}

/**
 * The deployment as the checks see it: every Bicep file under infra/ plus the text files that go with it
 * (azure.yaml, hooks, parameters, docs, the app's sample settings and sources). Immutable; `withBicep` / `withText` give a
 * copy with one file changed, so tests can show that each check fails when what it guards is removed.
 */
export class InfraModel {
    private constructor(
        private readonly bicepFiles: ReadonlyMap<string, BicepFile>,
        private readonly texts: ReadonlyMap<string, string>,
    ) {}

    static load(root = REPO_ROOT): InfraModel {
        const bicep = new Map<string, BicepFile>();
        for (const file of bicepFilesUnder(join(root, 'infra'))) {
            bicep.set(relative(root, file), BicepFile.load(file));
        }
        const texts = new Map<string, string>();
        for (const rel of [
            'azure.yaml',
            'infra/main.parameters.json',
            'infra/abbreviations.json',
            'scripts/postdeploy.sh',
            'scripts/postdeploy.ps1',
            'docs/deploy.md',
            'local.settings.sample.json',
            'host.json',
        ]) {
            texts.set(rel, readFileSync(join(root, rel), 'utf8'));
        }
        for (const rel of appSourcePaths(root)) texts.set(rel, readFileSync(join(root, rel), 'utf8'));
        return new InfraModel(bicep, texts);
    }

    /** Relative paths of the app's TypeScript sources (shared/, functions/, orchestrations/), as loaded. */
    get appSourcePaths(): string[] {
        return [...this.texts.keys()].filter((rel) => APP_SOURCE_DIRS.some((dir) => rel.startsWith(`${dir}/`)));
    }

    /** Relative paths of every Bicep file. */
    get bicepPaths(): string[] {
        return [...this.bicepFiles.keys()];
    }

    bicep(rel: string): BicepFile {
        const file = this.bicepFiles.get(rel);
        if (!file) throw new Error(`no Bicep file ${rel} in the model`);
        return file;
    }

    hasBicep(rel: string): boolean {
        return this.bicepFiles.has(rel);
    }

    text(rel: string): string {
        const text = this.texts.get(rel);
        if (text === undefined) throw new Error(`no file ${rel} in the model`);
        return text;
    }

    get main(): BicepFile {
        return this.bicep('infra/main.bicep');
    }

    /** The file a local module reference points at, if the model has it. */
    moduleFile(module: BicepModule): BicepFile | undefined {
        if (!module.file) return undefined;
        return this.bicepFiles.get(relative(REPO_ROOT, module.file));
    }

    /** The module file that `main.bicep`'s module `symbol` deploys. */
    mainModuleFile(symbol: string): BicepFile {
        const module = this.main.module(symbol);
        if (!module) throw new Error(`main.bicep has no module ${symbol}`);
        const file = this.moduleFile(module);
        if (!file) throw new Error(`module ${symbol} points at ${module.path}, which is not in infra/`);
        return file;
    }

    /** A copy with one Bicep file's source rewritten (it must change, so a mutation test cannot pass vacuously). */
    withBicep(rel: string, rewrite: (source: string) => string): InfraModel {
        const before = this.bicep(rel);
        const after = rewrite(before.source);
        if (after === before.source) throw new Error(`the rewrite of ${rel} changed nothing`);
        const files = new Map(this.bicepFiles);
        files.set(rel, BicepFile.parse(after, before.path));
        return new InfraModel(files, this.texts);
    }

    /** A copy with one text file rewritten (it must change). */
    withText(rel: string, rewrite: (text: string) => string): InfraModel {
        const before = this.text(rel);
        const after = rewrite(before);
        if (after === before) throw new Error(`the rewrite of ${rel} changed nothing`);
        const texts = new Map(this.texts);
        texts.set(rel, after);
        return new InfraModel(this.bicepFiles, texts);
    }
}
