import { parseArgs } from 'node:util';
import { parseByteSize } from '../shared/byteSize';
import { ensureErrorType } from '../shared/errors';
import { FailoverMode } from './simulator/failoverRun';
import {
    DEFAULT_STEP_TIMEOUT_SECONDS,
    ExternalPipeline,
    Fault,
    FAULTS,
    runSimulation,
    SimulationOptions,
} from './simulator/simulation';
import { parseDurableEngine, type DurableEngineName } from '../packages/functions-local/src';
import type { LocalHost } from './platform';
import { consoleLine } from '../shared/consoleRoute';

const USAGE = `Usage: hvr simulate --out DIR [--seed N] [--vms N] [--disks N] [--disk-size SIZE] [--cycles N]
                    [--churn SIZE] [--faults duplicate,reorder,drop] [--test-failover]
                    [--failover planned|unplanned] [--change-point] [--failback [--full-download]]
                    [--reprotect] [--recovery-plan] [--timeout SECONDS] [--json] [--serve]

Runs a simulated Hyper-V site against the pipeline: registers a site and a 30-second policy, enables protection
of every VM through the HTTP API, ships initial replication and --cycles delta cycles as MS-HRL logs through
upload grants, waits until every VM is protected with its last cycle applied, then writes DIR/<vmId>/<diskId>.raw
(the source) and DIR/<vmId>/<diskId>.vhd (the replica page blob) and compares them.

  --out DIR          where sources, replicas and host.log go (required)
  --seed N           workload seed (default 1): the same seed writes the same data
  --vms N            VMs (default 2)            --disks N   disks per VM (default 2; the first is the OS disk)
  --disk-size SIZE   bytes per disk, K/M/G suffixes (default 16M, at least 4M, whole 512-byte sectors)
  --cycles N         delta cycles (default 5)   --churn SIZE  bytes written per disk per cycle (default 1M)
  --faults LIST      duplicate (re-upload logs), reorder (upload a log after its successor), drop (lose one log),
                     encrypt (the first VM encrypts 60 % of its disks in the middle cycle; checked with LatestClean)
  --test-failover    then test-fail over each VM to its latest recovery point (dry-run infrastructure on the
                     simulator's own host), write DIR/<vmId>/<diskId>.failover.vhd, compare each with the source at
                     that point, and clean the drill up; the Test failover and cleanup jobs must succeed
  --failover MODE    then fail each VM over and commit. planned: the guests keep writing until the pipeline asks
                     the provider to shut them down, the final cycle is shipped after the shutdown, and each failover
                     disk (DIR/<vmId>/<diskId>.failover.vhd) must equal the source at shutdown with RPO 0.
                     unplanned: the latest recovery point. Disks are compared in-process and with qemu-img
  --change-point     with a failover (unplanned if --failover is not given): before commit, change to the
                     point of the second-to-last cycle and check its disks (<diskId>.changed.vhd) against the
                     sources as they were then; commit must leave only that point (needs --cycles 2 or more)
  --failback         with --failover: after commit the VM in Azure writes --churn bytes per disk to its disks
                     (and a quarter more while the first difference goes down), then it is failed back (planned
                     failover from Azure, ForDownTime): every on-premises disk must equal its disk in Azure
                     (in-process and qemu-img); the bytes on the wire are reported against the bytes it changed
  --full-download    with --failback: ForSynchronization (shut down first, every written block downloaded)
  --reprotect        with --failback: then re-protect (the replica levelled by a resync, compared with the
                     on-premises disks), and more delta cycles, checked as usual
  --recovery-plan    then put the VMs in a recovery plan of up to three ordered groups, the second held by a
                     manual pre-action; test-fail the plan over, check the hold, resume it, check the group order in
                     the job's tasks and every failover disk against its source (<diskId>.failover.vhd), then clean
                     the plan's drills up
  --timeout SECONDS  longest wait for any one step (default ${DEFAULT_STEP_TIMEOUT_SECONDS})
  --durable ENGINE   embedded (default; or HVR_DURABLE) or dtfx, the real Durable Functions extension
                     (built from engines/dtfx; fails at once if dotnet or the host is missing)
  --json             print {"vms": [...], "totals": {...}} (and "failovers" with --failover, "recoveryPlan" with
                     --recovery-plan) as the last line
  --serve            after the run, keep the local host up until Ctrl-C and print its console URL (a line
                     "  Console         <url>", signed in with the function key); not with HVR_API_URL

Without HVR_API_URL it starts Azurite and the local host itself. With HVR_API_URL, HVR_FUNCTION_KEY,
AZURE_STORAGE_CONNECTION_STRING (the app's storage) and HVR_PROVIDER_BUS (the provider bus connection string
the host prints) it uses that pipeline (a drill then runs on that app's
FAILOVER_INFRASTRUCTURE: with arm it creates the test VM in Azure, and removes it). Progress goes to stderr.
Exit code 0 only if every replica (and with --test-failover or --failover every failover disk) equals its source, a
planned failover reports RPO 0, and every
step and job completed; 1 otherwise (the failed step is printed); 2 for bad usage.`;

class UsageError extends Error {}

function count(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
        throw new UsageError(`--${name} must be a whole number from ${min} to ${max}; got "${value}"`);
    }
    return n;
}

function size(value: string | undefined, name: string, fallback: number): number {
    if (value === undefined) return fallback;
    try {
        return parseByteSize(value);
    } catch (err) {
        throw new UsageError(`--${name}: ${ensureErrorType(err).message}`);
    }
}

/** Parses the command line into simulation options (pipeline and progress are added by `main`). */
function durableEngine(value: string): DurableEngineName {
    try {
        return parseDurableEngine(value, '--durable');
    } catch (err) {
        throw new UsageError(ensureErrorType(err).message);
    }
}

export function parseSimulateArgs(argv: string[]): SimulationOptions & { json: boolean; serve: boolean } {
    const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
            out: { type: 'string' },
            seed: { type: 'string' },
            vms: { type: 'string' },
            disks: { type: 'string' },
            'disk-size': { type: 'string' },
            cycles: { type: 'string' },
            churn: { type: 'string' },
            faults: { type: 'string' },
            timeout: { type: 'string' },
            'test-failover': { type: 'boolean' },
            durable: { type: 'string' },
            failover: { type: 'string' },
            'change-point': { type: 'boolean' },
            failback: { type: 'boolean' },
            'full-download': { type: 'boolean' },
            reprotect: { type: 'boolean' },
            'recovery-plan': { type: 'boolean' },
            json: { type: 'boolean' },
            serve: { type: 'boolean' },
        },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!values.out) throw new UsageError('--out DIR is required');
    const diskSize = size(values['disk-size'], 'disk-size', 16 * 1024 * 1024);
    if (diskSize < 4 * 1024 * 1024 || diskSize % 512 !== 0) {
        throw new UsageError(`--disk-size must be at least 4M and a multiple of 512 bytes; got ${diskSize}`);
    }
    const churn = size(values.churn, 'churn', 1024 * 1024);
    if (churn < 512 || churn > diskSize) {
        throw new UsageError(`--churn must be from 512 bytes to the disk size; got ${churn}`);
    }
    const faults = new Set<Fault>();
    for (const name of (values.faults ?? '')
        .split(',')
        .map((f) => f.trim())
        .filter((f) => f !== '')) {
        if (!(FAULTS as readonly string[]).includes(name)) {
            throw new UsageError(`--faults: unknown fault "${name}"; expected ${FAULTS.join(', ')}`);
        }
        faults.add(name as Fault);
    }
    const changePoint = values['change-point'] ?? false;
    const failoverValue = values.failover ?? (changePoint ? 'unplanned' : undefined);
    if (failoverValue !== undefined && failoverValue !== 'planned' && failoverValue !== 'unplanned') {
        throw new UsageError(`--failover must be planned or unplanned; got "${failoverValue}"`);
    }
    const failover: FailoverMode | undefined = failoverValue;
    const cycles = count(values.cycles, 'cycles', 5, 0, 10_000);
    if (failover && values['test-failover']) {
        throw new UsageError('--test-failover and --failover exclude each other: a failed-over VM has no drill');
    }
    const recoveryPlan = values['recovery-plan'] ?? false;
    if (recoveryPlan && (failover || values['test-failover'])) {
        throw new UsageError(
            '--recovery-plan excludes --test-failover and --failover: the plan runs the drills itself',
        );
    }
    if (faults.has('encrypt') && cycles < 2) {
        throw new UsageError('--faults encrypt needs --cycles 2 or more (the attack runs after an ordinary cycle)');
    }
    if (changePoint && (cycles < 2 || faults.has('drop'))) {
        throw new UsageError(
            '--change-point needs --cycles 2 or more and no drop fault (the second-to-last cycle must be a point)',
        );
    }
    const failback = values.failback ?? false;
    if (failback && !failover) throw new UsageError('--failback needs --failover: only a failed-over VM fails back');
    if ((values.reprotect || values['full-download']) && !failback) {
        throw new UsageError('--reprotect and --full-download need --failback');
    }
    return {
        outDir: values.out,
        seed: count(values.seed, 'seed', 1, 0, 2 ** 32 - 1),
        vms: count(values.vms, 'vms', 2, 1, 50),
        disks: count(values.disks, 'disks', 2, 1, 17),
        diskSize,
        cycles,
        churn,
        faults,
        testFailover: values['test-failover'] ?? false,
        ...(recoveryPlan ? { recoveryPlan } : {}),
        ...(failover ? { failover, changePoint } : {}),
        ...(failback
            ? {
                  failback: {
                      dataSyncOption: values['full-download'] ? 'ForSynchronization' : 'ForDownTime',
                      reprotect: values.reprotect ?? false,
                  } as const,
              }
            : {}),
        stepTimeoutMs: count(values.timeout, 'timeout', DEFAULT_STEP_TIMEOUT_SECONDS, 1, 86_400) * 1000,
        json: values.json ?? false,
        serve: values.serve ?? false,
        ...(values.durable !== undefined ? { durable: durableEngine(values.durable) } : {}),
    };
}

/** The pipeline named by the environment, if any; half a configuration is a usage error. */
export function pipelineFromEnv(env: NodeJS.ProcessEnv = process.env): ExternalPipeline | undefined {
    const apiUrl = env.HVR_API_URL;
    if (!apiUrl) return undefined;
    const functionKey = env.HVR_FUNCTION_KEY;
    const storageConnectionString = env.AZURE_STORAGE_CONNECTION_STRING;
    const providerBusConnectionString = env.HVR_PROVIDER_BUS;
    if (!functionKey || !storageConnectionString || !providerBusConnectionString) {
        throw new UsageError(
            'HVR_API_URL is set, so HVR_FUNCTION_KEY, AZURE_STORAGE_CONNECTION_STRING (the app storage) and ' +
                'HVR_PROVIDER_BUS (a Service Bus connection string for the provider channel) must be too',
        );
    }
    return { apiUrl, functionKey, storageConnectionString, providerBusConnectionString };
}

/** `--serve`: the console URL on stdout, then wait for Ctrl-C (or SIGTERM) before the host stops. */
async function serveUntilInterrupted(host: LocalHost): Promise<void> {
    process.stdout.write(`\n${consoleLine(host.apiUrl, host.functionKey)}\n  API base URL    ${host.apiUrl}\n`);
    process.stdout.write('Serving the simulated site; press Ctrl-C to stop.\n');
    await new Promise<void>((done) => {
        process.once('SIGINT', () => done());
        process.once('SIGTERM', () => done());
    });
}

export async function main(argv: string[]): Promise<number> {
    if (argv.includes('--help') || argv.includes('-h')) {
        process.stdout.write(USAGE + '\n');
        return 0;
    }
    let options: SimulationOptions & { json: boolean; serve: boolean };
    let pipeline: ExternalPipeline | undefined;
    try {
        options = parseSimulateArgs(argv);
        pipeline = pipelineFromEnv();
        if (options.serve && pipeline)
            throw new UsageError('--serve keeps the local host up; it cannot serve HVR_API_URL');
    } catch (err) {
        const message = err instanceof UsageError || err instanceof TypeError ? err.message : String(err);
        process.stderr.write(`hvr simulate: ${message}\n(see hvr simulate --help)\n`);
        return 2;
    }
    const result = await runSimulation({
        ...options,
        pipeline,
        progress: (line) => process.stderr.write(line + '\n'),
        ...(options.serve ? { beforeStop: serveUntilInterrupted } : {}),
    });
    if (result.failure) process.stderr.write(`hvr simulate: step not completed: ${result.failure.message}\n`);
    for (const r of result.replicas.filter((c) => !c.equal)) {
        process.stderr.write(`hvr simulate: replica ${r.vmId}/${r.diskId} differs from its source: ${r.problem}\n`);
    }
    for (const f of result.failbacks) {
        for (const d of f.disks.filter((c) => !c.equal)) {
            process.stderr.write(`hvr simulate: ${f.vmId}/${d.diskId} after ${d.stage} differs: ${d.problem ?? ''}\n`);
        }
    }
    for (const d of result.failoverDisks.filter((c) => !c.equal)) {
        process.stderr.write(
            `hvr simulate: failover disk ${d.vmId}/${d.diskId} (${d.recoveryPointId}) differs from its source: ${d.problem}\n`,
        );
    }
    if (options.json) {
        const failovers = options.failover
            ? {
                  failovers: result.failovers.map(({ disks, ...f }) => ({
                      ...f,
                      disks: disks.map((d) => ({
                          diskId: d.diskId,
                          recoveryPointId: d.recoveryPointId,
                          equal: d.equal,
                          qemuImg: d.qemuImg,
                      })),
                  })),
              }
            : {};
        const failbacks = options.failback ? { failbacks: result.failbacks } : {};
        const plan = result.recoveryPlan
            ? {
                  recoveryPlan: {
                      ...result.recoveryPlan,
                      disks: result.recoveryPlan.disks.map((d) => ({ vmId: d.vmId, diskId: d.diskId, equal: d.equal })),
                  },
              }
            : {};
        const encrypt = result.encrypt ? { encrypt: result.encrypt } : {};
        process.stdout.write(
            JSON.stringify({
                vms: result.vms,
                totals: result.totals,
                ...failovers,
                ...failbacks,
                ...plan,
                ...encrypt,
            }) + '\n',
        );
    }
    return result.ok ? 0 : 1;
}
