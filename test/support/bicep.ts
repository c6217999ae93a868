import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

/**
 * The real Bicep compiler, as `.ci/run` restores it (infra/tools/bicep.sh: the NuGet package
 * Azure.Bicep.CommandLine.linux-x64 at the version pinned in infra/tools/bicep.csproj). Tests compile the
 * deployment with it and assert on the ARM JSON that Azure would receive.
 */

const REPO_ROOT = resolve(__dirname, '..', '..');
const PROJECT = join(REPO_ROOT, 'infra', 'tools', 'bicep.csproj');

/** The pinned CLI version, read from the one place that pins it. */
export function pinnedBicepVersion(): string {
    const match = /Include="Azure\.Bicep\.CommandLine\.linux-x64" Version="\[([^\]]+)\]"/.exec(
        readFileSync(PROJECT, 'utf8'),
    );
    if (!match) throw new Error(`${PROJECT} does not pin Azure.Bicep.CommandLine.linux-x64 to an exact version`);
    return match[1]!;
}

/** Where the CLI is: BICEP_CLI, else where infra/tools/bicep.sh restores it; undefined when neither exists. */
export function bicepCliPath(): string | undefined {
    const fromEnv = process.env.BICEP_CLI;
    if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
    const restored = join(
        REPO_ROOT,
        '.tools',
        'nuget',
        'azure.bicep.commandline.linux-x64',
        pinnedBicepVersion(),
        'tools',
        'bicep',
    );
    return existsSync(restored) ? restored : undefined;
}

/** Why compile-dependent tests are skipped here, or undefined when the CLI is available. */
export function bicepUnavailableReason(): string | undefined {
    if (bicepCliPath()) return undefined;
    return (
        'Bicep CLI not restored (needs dotnet: `infra/tools/bicep.sh restore`, as .ci/run does); ' +
        'skipping the tests that read the compiled ARM JSON'
    );
}

function runBicep(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const cli = bicepCliPath();
    if (!cli) throw new Error(bicepUnavailableReason());
    const result = spawnSync(cli, args, {
        encoding: 'utf8',
        // The CLI is self-contained .NET; without ICU it needs invariant globalization.
        env: { ...process.env, DOTNET_SYSTEM_GLOBALIZATION_INVARIANT: '1' },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 180_000,
    });
    if (result.error) throw result.error;
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function filesUnder(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true })
        .flatMap((entry) => {
            const full = join(dir, entry.name);
            if (entry.isDirectory()) return entry.name === 'tools' ? [] : filesUnder(full);
            return [full];
        })
        .sort();
}

export interface CompiledBicep {
    /** The ARM template (JSON) `bicep build` wrote. */
    template: unknown;
    /** Every diagnostic line the build printed (warnings included); empty when clean. */
    diagnostics: string[];
}

/**
 * `bicep build <file> --stdout`, cached in the temp folder by the content of everything under infra/ and the CLI
 * version, so that test files (and jest workers) compile an unchanged deployment once.
 */
export function compileBicep(file: string): CompiledBicep {
    const infra = join(REPO_ROOT, 'infra');
    const hash = createHash('sha256').update(pinnedBicepVersion()).update(resolve(file)).update(readFileSync(file));
    for (const path of filesUnder(infra)) hash.update(relative(infra, path)).update(readFileSync(path));
    const cacheDir = join(tmpdir(), 'hvr-bicep-build');
    const cached = join(cacheDir, `${hash.digest('hex')}.json`);
    if (existsSync(cached)) return JSON.parse(readFileSync(cached, 'utf8')) as CompiledBicep;

    const run = runBicep(['build', resolve(file), '--stdout']);
    if (run.status !== 0) throw new Error(`bicep build ${file} failed:\n${run.stderr}`);
    const compiled: CompiledBicep = {
        template: JSON.parse(run.stdout),
        diagnostics: run.stderr.split('\n').filter((line) => line.trim() !== ''),
    };
    mkdirSync(cacheDir, { recursive: true });
    const partial = `${cached}.${process.pid}.tmp`;
    writeFileSync(partial, JSON.stringify(compiled));
    renameSync(partial, cached); // atomic: a parallel worker sees the whole file or none
    return compiled;
}

/** `bicep lint <file>`: the diagnostics it prints (linter rules are errors under infra/bicepconfig.json). */
export function lintBicep(file: string): string[] {
    const run = runBicep(['lint', resolve(file)]);
    const lines = `${run.stdout}\n${run.stderr}`.split('\n').filter((line) => line.trim() !== '');
    if (run.status !== 0 && lines.length === 0) lines.push(`bicep lint exited with ${run.status}`);
    return lines;
}

/** The deployment's entry points: infra/main.bicep and any template under infra/hooks/. */
export function bicepEntryPoints(): string[] {
    const hooks = join(REPO_ROOT, 'infra', 'hooks');
    const extra = existsSync(hooks)
        ? readdirSync(hooks)
              .filter((name) => name.endsWith('.bicep'))
              .map((name) => join(hooks, name))
        : [];
    return [join(REPO_ROOT, 'infra', 'main.bicep'), ...extra.sort()];
}
