import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './infraModel';

/**
 * Runs scripts/postdeploy.sh for real against a stand-in `az` that records its arguments: the hook must wait for
 * the blobs_extension key without printing it, then deploy the subscription template with the azd outputs.
 */
describe('scripts/postdeploy.sh', () => {
    let dir: string;
    let calls: string;

    const azdOutputs = {
        AZURE_RESOURCE_GROUP: 'rg-hvr',
        AZURE_FUNCTION_APP_NAME: 'func-abc',
        REPLICA_EVENTS_SYSTEM_TOPIC_NAME: 'evgt-replica-abc',
        REPLICA_STORAGE_ACCOUNT_NAME: 'strepabc',
        EVENTGRID_DEADLETTER_CONTAINER: 'replica-logs-deadletter',
    };

    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'postdeploy-'));
        calls = join(dir, 'az-calls');
        // One line per call, arguments separated by |. The key question is answered from FAKE_KEY_ANSWERS, one
        // answer per call (the last one repeats); deployments exit with FAKE_DEPLOY_STATUS.
        writeFileSync(
            join(dir, 'az'),
            `#!/bin/sh
(IFS='|'; echo "$*") >> "${calls}"
case "$1 $2 $3" in
"functionapp keys list")
    n=$(grep -c '^functionapp|keys|list' "${calls}")
    answer=$(echo "$FAKE_KEY_ANSWERS" | tr ',' '\\n' | sed -n "\${n}p")
    [ -n "$answer" ] || answer=$(echo "$FAKE_KEY_ANSWERS" | tr ',' '\\n' | tail -n 1)
    echo "$answer" ;;
"deployment group create") exit "\${FAKE_DEPLOY_STATUS:-0}" ;;
esac
`,
        );
        chmodSync(join(dir, 'az'), 0o755);
    });

    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    function runHook(env: Record<string, string>) {
        const result = spawnSync('sh', [join(REPO_ROOT, 'scripts', 'postdeploy.sh')], {
            env: { PATH: `${dir}:/usr/bin:/bin`, KEY_WAIT_SECONDS: '0', ...env },
            encoding: 'utf8',
            timeout: 30_000,
        });
        const recorded = existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [];
        return {
            status: result.status,
            stdout: result.stdout,
            stderr: result.stderr,
            calls: recorded.map((c) => c.split('|')),
        };
    }

    it('waits for the blobs_extension key, then deploys the subscription template with the azd outputs', () => {
        const run = runHook({ ...azdOutputs, FAKE_KEY_ANSWERS: 'false,false,true' });
        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        const keyChecks = run.calls.filter((c) => c[0] === 'functionapp');
        expect(keyChecks).toHaveLength(3);
        // It asks whether the key exists, never for the key itself.
        expect(keyChecks[0]).toEqual([
            'functionapp',
            'keys',
            'list',
            '--resource-group',
            'rg-hvr',
            '--name',
            'func-abc',
            '--query',
            'systemKeys.blobs_extension != `null`',
            '--output',
            'tsv',
        ]);
        const deployments = run.calls.filter((c) => c[0] === 'deployment');
        expect(deployments).toHaveLength(1);
        const deploy = deployments[0]!;
        expect(deploy.slice(0, 7)).toEqual([
            'deployment',
            'group',
            'create',
            '--resource-group',
            'rg-hvr',
            '--name',
            'replica-log-subscription',
        ]);
        const template = deploy[deploy.indexOf('--template-file') + 1]!;
        expect(existsSync(template)).toBe(true);
        expect(template).toMatch(/infra\/hooks\/replica-log-subscription\.bicep$/);
        expect(deploy).toEqual(
            expect.arrayContaining([
                'functionAppName=func-abc',
                'systemTopicName=evgt-replica-abc',
                'replicaStorageAccountName=strepabc',
                'deadLetterContainerName=replica-logs-deadletter',
                'functionName=mergeReplicaLog',
            ]),
        );
        expect(run.stdout).toMatch(/now reach mergeReplicaLog/);
    });

    it('gives up with a clear message when the key never appears (the function is not deployed)', () => {
        const run = runHook({ ...azdOutputs, FAKE_KEY_ANSWERS: 'false', KEY_WAIT_ATTEMPTS: '3' });
        expect(run.status).toBe(1);
        expect(run.stderr).toMatch(
            /blobs_extension key of func-abc did not appear; check that mergeReplicaLog is deployed/,
        );
        expect(run.calls.filter((c) => c[0] === 'functionapp')).toHaveLength(3);
        expect(run.calls.filter((c) => c[0] === 'deployment')).toHaveLength(0);
    });

    it('retries the deployment (Event Grid validates the webhook) and fails after the last attempt', () => {
        const run = runHook({ ...azdOutputs, FAKE_KEY_ANSWERS: 'true', FAKE_DEPLOY_STATUS: '1', DEPLOY_ATTEMPTS: '2' });
        expect(run.status).toBe(1);
        expect(run.calls.filter((c) => c[0] === 'deployment')).toHaveLength(2);
        expect(run.stderr).toMatch(/could not create the Event Grid subscription after 2 attempts/);
    });

    it('names the missing azd output instead of calling Azure with blanks', () => {
        const { REPLICA_EVENTS_SYSTEM_TOPIC_NAME: _omitted, ...partial } = azdOutputs;
        const run = runHook({ ...partial, FAKE_KEY_ANSWERS: 'true' });
        expect(run.status).toBe(1);
        expect(run.stderr).toMatch(/REPLICA_EVENTS_SYSTEM_TOPIC_NAME is not set/);
        expect(run.calls).toEqual([]);
    });

    it('needs the Azure CLI', () => {
        rmSync(join(dir, 'az'));
        const run = spawnSync('/bin/sh', [join(REPO_ROOT, 'scripts', 'postdeploy.sh')], {
            env: { PATH: dir, ...azdOutputs },
            encoding: 'utf8',
        });
        expect(run.status).toBe(1);
        expect(run.stderr).toMatch(/the Azure CLI \(az\) is required/);
    });
});

describe('scripts/postdeploy.ps1', () => {
    const script = readFileSync(join(REPO_ROOT, 'scripts', 'postdeploy.ps1'), 'utf8');
    const shell = readFileSync(join(REPO_ROOT, 'scripts', 'postdeploy.sh'), 'utf8');

    it('takes the same steps as the POSIX hook', () => {
        for (const step of [
            "--query 'systemKeys.blobs_extension != `null`'",
            'az deployment group create',
            "--name 'replica-log-subscription'",
            'KEY_WAIT_ATTEMPTS',
            'DEPLOY_ATTEMPTS',
            "'mergeReplicaLog'",
        ]) {
            expect(script).toContain(step);
        }
        expect(shell).toContain('--name "replica-log-subscription"');
    });

    it('checks the same azd outputs as the POSIX hook', () => {
        const posix = /for name in ([^;]+);/
            .exec(shell)![1]!
            .split(/[\s\\]+/)
            .filter(Boolean);
        const windows = [.../foreach \(\$name in ([^)]+)\)/.exec(script)![1]!.matchAll(/'(\w+)'/g)].map((m) => m[1]);
        expect(windows).toEqual(posix);
    });
});
