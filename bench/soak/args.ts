import { parseByteSize } from '../../shared/byteSize';
import { HvrError } from '../../shared/errors';
import {
    COPY_FREQUENCIES_SECONDS,
    CopyFrequencySeconds,
    MAX_RECOVERY_POINT_RETENTION_HOURS,
} from '../../shared/policy/replicationPolicy';

/** What `npm run bench -- soak …` runs. */
export interface SoakOptions {
    vms: number;
    disks: number;
    /** Bytes per disk. */
    diskSize: number;
    /** Bytes the guest writes per disk per second. */
    churn: number;
    /** Seconds between cycles: the policy's copy frequency. */
    copyFrequency: CopyFrequencySeconds;
    /** How long the guests write and cycles ship, in minutes (fractions allowed). */
    minutes: number;
    seed: number;
    /** Keep Azurite's data in memory instead of on disk (default: on disk, under the run's folder). */
    azuriteInMemory: boolean;
    /** Where sources, Azurite's data and the host log go (default: a fresh temporary folder). */
    out?: string;
    /** Sample memory (host RSS, Azurite RSS) into this JSON file every minute as well as into the result. */
    memoryFile?: string;
    /** The policy's recovery point retention in hours (its `recoveryPointRetentionHours`). */
    retentionHours: number;
    /** The Durable engine of the host. */
    durable: 'embedded' | 'dtfx';
}

export const SOAK_USAGE = `Usage: npm run bench -- soak [options]
  --vms N               VMs (default 4)
  --disks N             disks per VM (default 2)
  --disk-size SIZE      bytes per disk, K/M/G suffixes (default 256M; at least 4M, whole MiB)
  --churn SIZE          bytes written per disk per second (default 2M)
  --copy-frequency S    seconds between cycles: 30, 300 or 900 (default 30)
  --minutes M           how long the guests write (default 10)
  --seed N              workload seed (default 1)
  --out DIR             sources, Azurite's data, host.log (default: a temporary folder, removed after)
  --memory-file FILE    also write the per-minute memory samples to FILE
  --azurite-in-memory   keep Azurite's data in memory (it grows with the run)
  --retention-hours H   the policy's recovery point retention, 0 to 72 (default 2; 0 keeps the newest point)
  --durable ENGINE      embedded (default) or dtfx`;

const MiB = 1024 * 1024;

function whole(flag: string, text: string, min: number, max: number): number {
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
        throw new HvrError('VALIDATION_FAILED', `${flag} needs a whole number from ${min} to ${max}, got "${text}".`);
    }
    return Number(text);
}

/** Reads the soak benchmark's arguments; VALIDATION_FAILED naming the flag for anything it cannot use. */
export function parseSoakArgs(argv: readonly string[]): SoakOptions {
    const options: SoakOptions = {
        vms: 4,
        disks: 2,
        diskSize: 256 * MiB,
        churn: 2 * MiB,
        copyFrequency: 30,
        minutes: 10,
        seed: 1,
        azuriteInMemory: false,
        retentionHours: 2,
        durable: 'embedded',
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!;
        const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
        const flag = eq > 0 ? arg.slice(0, eq) : arg;
        const value = (): string => {
            const v = eq > 0 ? arg.slice(eq + 1) : argv[++i];
            if (v === undefined || v === '') throw new HvrError('VALIDATION_FAILED', `${flag} needs a value.`);
            return v;
        };
        switch (flag) {
            case '--vms':
                options.vms = whole(flag, value(), 1, 1000);
                break;
            case '--disks':
                options.disks = whole(flag, value(), 1, 16);
                break;
            case '--disk-size': {
                const text = value();
                const size = parseByteSize(text);
                if (size < 4 * MiB || size % MiB !== 0) {
                    throw new HvrError(
                        'VALIDATION_FAILED',
                        `--disk-size must be at least 4M and whole MiB, got "${text}".`,
                    );
                }
                options.diskSize = size;
                break;
            }
            case '--churn': {
                const text = value();
                const churn = parseByteSize(text);
                if (churn <= 0) throw new HvrError('VALIDATION_FAILED', `--churn must be more than 0, got "${text}".`);
                options.churn = churn;
                break;
            }
            case '--copy-frequency': {
                const text = value();
                const seconds = Number(text);
                if (!/^\d+$/.test(text) || !COPY_FREQUENCIES_SECONDS.includes(seconds as CopyFrequencySeconds)) {
                    throw new HvrError(
                        'VALIDATION_FAILED',
                        `--copy-frequency must be one of ${COPY_FREQUENCIES_SECONDS.join(', ')} (a policy's copy frequency), got "${text}".`,
                    );
                }
                options.copyFrequency = seconds as CopyFrequencySeconds;
                break;
            }
            case '--minutes': {
                const text = value();
                const minutes = Number(text);
                if (!/^\d+(\.\d+)?$/.test(text) || !(minutes > 0) || minutes > 24 * 60) {
                    throw new HvrError(
                        'VALIDATION_FAILED',
                        `--minutes must be a number above 0 up to 1440, got "${text}".`,
                    );
                }
                options.minutes = minutes;
                break;
            }
            case '--seed':
                options.seed = whole(flag, value(), 0, 2 ** 32 - 1);
                break;
            case '--retention-hours':
                options.retentionHours = whole(flag, value(), 0, MAX_RECOVERY_POINT_RETENTION_HOURS);
                break;
            case '--out':
                options.out = value();
                break;
            case '--memory-file':
                options.memoryFile = value();
                break;
            case '--azurite-in-memory':
                options.azuriteInMemory = true;
                break;
            case '--durable': {
                const engine = value();
                if (engine !== 'embedded' && engine !== 'dtfx') {
                    throw new HvrError('VALIDATION_FAILED', `--durable must be embedded or dtfx, got "${engine}".`);
                }
                options.durable = engine;
                break;
            }
            default:
                throw new HvrError('VALIDATION_FAILED', `unknown option "${arg}".\n${SOAK_USAGE}`);
        }
    }
    if (options.churn > options.diskSize) {
        throw new HvrError('VALIDATION_FAILED', '--churn is more than the disk size per second.');
    }
    return options;
}

/**
 * The disk space a soak needs under its folder: the guests' sparse sources (each grows to the disk's size), and,
 * with Azurite on disk, every byte the pipeline writes to it: the initial copies, then every guest write, since the
 * recovery points' snapshots keep what the replicas overwrite beyond the end of the run. The 4 x 2 x 256 MiB run
 * at 2 MiB/s for 60 minutes used about 1 GiB a minute, as this says.
 */
export function soakDiskBytes(o: SoakOptions): number {
    const disks = o.vms * o.disks;
    const sources = disks * o.diskSize;
    const azurite = o.azuriteInMemory ? 0 : disks * (o.diskSize + o.churn * o.minutes * 60);
    return sources + azurite;
}
