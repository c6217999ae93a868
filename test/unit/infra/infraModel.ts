import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ArmDeployment, ArmValue, Json, JsonObject, armDeployment, jsonAt, jsonText } from '../../support/armTemplate';
import { compileBicep } from '../../support/bicep';

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

const TEXT_FILES = [
    'azure.yaml',
    'infra/main.parameters.json',
    'docs/deploy.md',
    'local.settings.sample.json',
    'host.json',
    'functions/providerCommands.ts',
];

/**
 * The deployment as the checks see it: infra/main.bicep compiled by the real Bicep CLI (the ARM JSON Azure
 * receives) plus the text files that go with it (azure.yaml, parameters, docs, the app's sample settings and
 * sources). Immutable; `withTemplate` / `withText` give a copy with one thing changed, so tests can show that each
 * check fails when what it guards is removed.
 */
export class InfraModel {
    private constructor(
        private readonly template: JsonObject,
        private readonly texts: ReadonlyMap<string, string>,
        private readonly parameters: Readonly<Record<string, ArmValue>> = {},
    ) {}

    /** `compile: false` loads the text files only (where the Bicep CLI is missing); `main` then throws. */
    static load(root = REPO_ROOT, { compile = true } = {}): InfraModel {
        const template = compile ? compileBicep(join(root, 'infra', 'main.bicep')).template : { uncompiled: true };
        const texts = new Map<string, string>();
        for (const rel of [...TEXT_FILES, ...appSourcePaths(root)]) {
            texts.set(rel, readFileSync(join(root, rel), 'utf8'));
        }
        return new InfraModel(template as JsonObject, texts);
    }

    /** The compiled main template as a deployment tree (modules are nested deployments). */
    get main(): ArmDeployment {
        if ('uncompiled' in this.template) throw new Error('this model was loaded without compiling the Bicep');
        return armDeployment(this.template, this.parameters);
    }

    /** The nested deployment of main.bicep's module `name`. */
    module(name: string): ArmDeployment {
        return this.main.module(name);
    }

    /** Relative paths of the app's TypeScript sources (shared/, functions/, orchestrations/), as loaded. */
    get appSourcePaths(): string[] {
        return [...this.texts.keys()].filter((rel) => APP_SOURCE_DIRS.some((dir) => rel.startsWith(`${dir}/`)));
    }

    text(rel: string): string {
        const text = this.texts.get(rel);
        if (text === undefined) throw new Error(`no file ${rel} in the model`);
        return text;
    }

    /** The same template deployed with these parameter values (e.g. `{ principalId: 'user' }`). */
    withParameters(parameters: Record<string, ArmValue>): InfraModel {
        return new InfraModel(this.template, this.texts, { ...this.parameters, ...parameters });
    }

    /** A copy whose compiled template is changed by `mutate` (it must change, so a test cannot pass vacuously). */
    withTemplate(mutate: (template: JsonObject) => void): InfraModel {
        const copy = structuredClone(this.template);
        mutate(copy);
        if (JSON.stringify(copy) === JSON.stringify(this.template)) throw new Error('the mutation changed nothing');
        return new InfraModel(copy, this.texts, this.parameters);
    }

    /**
     * A copy with one resource of a module changed: `modulePath` names nested deployments from main
     * (`['functionApp']`), `type` the resource type, `which` picks among several (default: exactly one).
     */
    withResource(
        modulePath: string[],
        type: string,
        mutate: (resource: JsonObject) => void,
        which: (resource: JsonObject) => boolean = () => true,
    ): InfraModel {
        return this.withTemplate((template) => {
            const found = resourcesIn(template, modulePath).filter(
                (r) => jsonText(r.type).toLowerCase() === type.toLowerCase() && which(r),
            );
            if (found.length !== 1)
                throw new Error(`expected one ${type} in ${modulePath.join('/')}, found ${found.length}`);
            mutate(found[0]!);
        });
    }

    /** A copy with the template of a nested deployment changed (its variables, parameters, resources). */
    withModuleTemplate(modulePath: string[], mutate: (template: JsonObject) => void): InfraModel {
        return this.withTemplate((template) => {
            let current: JsonObject = template;
            for (const name of modulePath) {
                const deployment = resourcesIn(current, []).find(
                    (r) => r.type === 'Microsoft.Resources/deployments' && r.name === name,
                );
                if (!deployment) throw new Error(`no module ${name} in ${modulePath.join('/')}`);
                current = jsonAt(deployment, 'properties.template') as JsonObject;
            }
            mutate(current);
        });
    }

    /** A copy with the module `name` of main changed (its deployment resource: params, scope, name). */
    withModule(name: string, mutate: (deployment: JsonObject) => void): InfraModel {
        return this.withTemplate((template) => {
            const found = resourcesIn(template, []).filter(
                (r) => r.type === 'Microsoft.Resources/deployments' && r.name === name,
            );
            if (found.length !== 1) throw new Error(`expected one module ${name}, found ${found.length}`);
            mutate(found[0]!);
        });
    }

    /** A copy with one text file rewritten (it must change). */
    withText(rel: string, rewrite: (text: string) => string): InfraModel {
        const before = this.text(rel);
        const after = rewrite(before);
        if (after === before) throw new Error(`the rewrite of ${rel} changed nothing`);
        const texts = new Map(this.texts);
        texts.set(rel, after);
        return new InfraModel(this.template, texts, this.parameters);
    }
}

/** The raw resources of the nested template reached by `modulePath` (deployment names) from `template`. */
export function resourcesIn(template: JsonObject, modulePath: string[]): JsonObject[] {
    let current: Json | undefined = template;
    for (const name of modulePath) {
        const resources = (jsonAt(current, 'resources') ?? []) as JsonObject[];
        const deployment = resources.find((r) => r.type === 'Microsoft.Resources/deployments' && r.name === name);
        if (!deployment) throw new Error(`no module ${name} in ${modulePath.join('/')}`);
        current = jsonAt(deployment, 'properties.template');
    }
    return (jsonAt(current, 'resources') ?? []) as JsonObject[];
}

/** The `properties.parameters` of a module deployment, to rewrite what main passes. */
export function passedParameters(deployment: JsonObject): Record<string, { value: Json }> {
    return jsonAt(deployment, 'properties.parameters') as Record<string, { value: Json }>;
}
