import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { connectionFromString } from '../shared/storage/connections';
import { ensureErrorType } from '../shared/errors';
import { isContractId, ID_RULE } from '../packages/provider-kit/src';
import { FolderProviderOptions, FolderProviderResult, Quiesce, runFolderProvider } from './folderProvider/folderSite';
import { PointCheck, verifyRecoveryPoints } from './folderProvider/verifyPoints';
import { ManagementClient } from './simulator/managementClient';

const USAGE = `Usage: hvr provider --folder DIR --site ID [--copy-frequency 30|300|900] [--interval SECONDS]
                    [--cycles N] [--state DIR] [--keep-barriers] [--verify] [--quiesce-command CMD]
                    [--timeout SECONDS] [--json]

Protects a folder of raw disk images as a Hyper-V site, in real time, against a running pipeline (npm start, or
the Function App): registers the site (its key is kept in the state folder), creates the policy
hvr-provider-<copy frequency>s, enables protection of one VM per image set, ships initial replication, then every
copy frequency takes a barrier of each VM's images and ships the changes since the last one as one cycle. A
recovery point equals the images as they were at its cycle's barrier.

  --folder DIR           the images: each sub-folder is a VM whose *.raw / *.img images are its disks (the one
                         named os, else the first, is the OS disk); each image directly in DIR is a VM of one disk
  --site ID              the site id (registered on first use)
  --copy-frequency S     the policy's copy frequency: 30 (default), 300 or 900 seconds
  --interval SECONDS     cycle this often instead (shorter than the copy frequency; for tests)
  --cycles N             stop after N delta cycles per VM (default: run until Ctrl-C)
  --state DIR            site key, log chains and barrier copies (default DIR/.hvr-provider); a restart with the
                         same state continues each VM's chain
  --keep-barriers        keep each cycle's barrier copy: <state>/barriers/<vmId>/<cycleId>/<diskId>.raw
  --verify               at the end, check every recovery point of the run against its barrier copy
                         (implies --keep-barriers; needs AZURE_STORAGE_CONNECTION_STRING, the app storage)
  --quiesce-command CMD  run "CMD freeze <vmId>" before and "CMD thaw <vmId>" after each barrier (whatever writes
                         the images pauses in between, so the barrier is one moment of all the VM's images)
  --timeout SECONDS      longest wait for one step (an event, Protected); default 600
  --json                 print the result (per VM its cycles; with --verify the checks) as the last line

The pipeline: HVR_API_URL, HVR_FUNCTION_KEY and HVR_PROVIDER_BUS (as npm start prints them: "API base URL",
"Function key", "Provider bus PROVIDER_BUS=..."). Exit code 0 when every cycle was shipped (and with --verify
every point equals its barrier), 1 otherwise, 2 for bad usage.`;

class UsageError extends Error {}

const QUIESCE_TIMEOUT_MS = 60_000;

function whole(value: string | undefined, name: string, min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
        throw new UsageError(`--${name} must be a whole number from ${min} to ${max}; got "${value}"`);
    }
    return n;
}

export interface ProviderCliOptions extends Omit<
    FolderProviderOptions,
    'apiUrl' | 'functionKey' | 'busConnectionString'
> {
    verify: boolean;
    json: boolean;
    quiesceCommand?: string;
}

export function parseProviderArgs(argv: string[]): ProviderCliOptions {
    const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
            folder: { type: 'string' },
            site: { type: 'string' },
            'copy-frequency': { type: 'string' },
            interval: { type: 'string' },
            cycles: { type: 'string' },
            state: { type: 'string' },
            'keep-barriers': { type: 'boolean' },
            verify: { type: 'boolean' },
            'quiesce-command': { type: 'string' },
            timeout: { type: 'string' },
            json: { type: 'boolean' },
        },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!values.folder) throw new UsageError('--folder DIR is required');
    if (!values.site) throw new UsageError('--site ID is required');
    if (!isContractId(values.site)) throw new UsageError(`--site must be ${ID_RULE}; got "${values.site}"`);
    const copyFrequency = whole(values['copy-frequency'], 'copy-frequency', 30, 900) ?? 30;
    if (copyFrequency !== 30 && copyFrequency !== 300 && copyFrequency !== 900) {
        throw new UsageError(`--copy-frequency must be 30, 300 or 900; got ${copyFrequency}`);
    }
    const interval = whole(values.interval, 'interval', 1, copyFrequency);
    const cycles = whole(values.cycles, 'cycles', 1, 1_000_000);
    const verify = values.verify ?? false;
    if (verify && cycles === undefined)
        throw new UsageError('--verify needs --cycles (the run must end to be checked)');
    return {
        folder: values.folder,
        siteId: values.site,
        copyFrequencySeconds: copyFrequency,
        ...(interval !== undefined ? { intervalSeconds: interval } : {}),
        ...(cycles !== undefined ? { cycles } : {}),
        ...(values.state ? { stateDir: values.state } : {}),
        keepBarriers: (values['keep-barriers'] ?? false) || verify,
        stepTimeoutMs: (whole(values.timeout, 'timeout', 1, 86_400) ?? 600) * 1000,
        verify,
        json: values.json ?? false,
        ...(values['quiesce-command'] ? { quiesceCommand: values['quiesce-command'] } : {}),
    };
}

function runHook(command: string, args: string[]): Promise<void> {
    return new Promise((done, fail) => {
        execFile(command, args, { timeout: QUIESCE_TIMEOUT_MS, shell: false }, (err, _stdout, stderr) => {
            if (err) fail(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
            else done();
        });
    });
}

/** The quiesce hook of --quiesce-command. */
export function commandQuiesce(command: string): Quiesce {
    return async (vmId) => {
        await runHook(command, ['freeze', vmId]);
        return () => runHook(command, ['thaw', vmId]);
    };
}

export async function main(argv: string[]): Promise<number> {
    if (argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(USAGE + '\n');
        return 0;
    }
    let options: ProviderCliOptions;
    const env = process.env;
    try {
        options = parseProviderArgs(argv);
        for (const name of ['HVR_API_URL', 'HVR_FUNCTION_KEY', 'HVR_PROVIDER_BUS']) {
            if (!env[name]) throw new UsageError(`${name} is not set (npm start prints the pipeline's values)`);
        }
        if (options.verify && !env.AZURE_STORAGE_CONNECTION_STRING) {
            throw new UsageError(
                '--verify needs AZURE_STORAGE_CONNECTION_STRING (the app storage, npm start prints it)',
            );
        }
    } catch (err) {
        const message = err instanceof UsageError || err instanceof TypeError ? err.message : String(err);
        process.stderr.write(`hvr provider: ${message}\n(see hvr provider --help)\n`);
        return 2;
    }
    const abort = new AbortController();
    const stop = () => {
        process.stderr.write('hvr provider: stopping after the cycle in progress (Ctrl-C again to quit at once)\n');
        if (abort.signal.aborted) process.exit(130);
        abort.abort();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const started = Date.now();
    const say = (line: string) =>
        process.stderr.write(`[provider ${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
    let result: FolderProviderResult;
    try {
        result = await runFolderProvider({
            ...options,
            apiUrl: env.HVR_API_URL!,
            functionKey: env.HVR_FUNCTION_KEY!,
            busConnectionString: env.HVR_PROVIDER_BUS!,
            ...(options.quiesceCommand ? { quiesce: commandQuiesce(options.quiesceCommand) } : {}),
            signal: abort.signal,
            log: say,
        });
    } catch (err) {
        process.stderr.write(`hvr provider: ${ensureErrorType(err).message}\n`);
        return 1;
    } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
    }
    const checks: PointCheck[] = [];
    if (options.verify && abort.signal.aborted) say('stopped before the last cycle: nothing verified');
    if (options.verify && !abort.signal.aborted) {
        const api = new ManagementClient(env.HVR_API_URL!, env.HVR_FUNCTION_KEY!);
        const blob = connectionFromString(env.AZURE_STORAGE_CONNECTION_STRING!).blob;
        const stateDir = resolve(options.stateDir ?? join(options.folder, '.hvr-provider'));
        say('waiting for the last cycle to be a recovery point, then checking every point against its barrier');
        for (const vm of result.vms) {
            const cycles = vm.cycles.map((c) => c.cycleId);
            await waitForPoint(api, vm.vmId, cycles[cycles.length - 1], options.stepTimeoutMs ?? 600_000);
            checks.push(
                ...(await verifyRecoveryPoints(
                    api,
                    blob,
                    join(stateDir, 'barriers'),
                    vm.vmId,
                    vm.disks,
                    ['initial', ...cycles],
                    join(stateDir, 'verify'),
                )),
            );
        }
        for (const c of checks) {
            say(
                `${c.vmId} ${c.cycleId} ${c.diskId}: ${c.equal ? 'equals its barrier' : `DIFFERS: ${c.problem}`} (qemu-img: ${c.qemuImg})`,
            );
        }
    }
    if (options.json) process.stdout.write(JSON.stringify({ ...result, ...(options.verify ? { checks } : {}) }) + '\n');
    const shipped = result.vms.every(
        (vm) => vm.stopped !== undefined || options.cycles === undefined || vm.cycles.length === options.cycles,
    );
    return shipped && checks.every((c) => c.equal) ? 0 : 1;
}

async function waitForPoint(
    api: ManagementClient,
    vmId: string,
    cycleId: string | undefined,
    timeoutMs: number,
): Promise<void> {
    if (!cycleId) return;
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
        const points = await api.recoveryPoints(vmId).catch(() => []);
        if (points.some((p) => p.properties.cycleId === cycleId)) return;
        await new Promise((r) => setTimeout(r, 1000));
    }
}
