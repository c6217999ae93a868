import { open, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { formatByteSize, parseByteSize } from '../shared/byteSize';
import { HvrError } from '../shared/errors';
import { HrlFileWriter, HrlIndex, isGuid, openFileSource, readHrlData, validateHrl } from '../shared/hrl';

const USAGE = `Usage: hvr hrl <command> [options]

Commands:
  inspect <log> [--json] [--disk-size N] [--entries N]   validate a log and print its header and entries
  apply <log> --disk <raw image>                          validate a whole log, then apply it to a raw image
  make --base <raw> --target <raw> --out <log>            write the log that turns base into target

Sizes accept K, M, G, T suffixes (binary): 64M, 1G. Run "hvr hrl <command> --help" for details.`;

const HELP: Record<string, string> = {
    inspect: `Usage: hvr hrl inspect <log> [--json] [--disk-size N] [--entries N]

Validates the whole log (header, metadata, layout, data checksums) and prints its header and a summary of
its entries. Exit code 0 when the log is valid, 1 with one line on stderr when it is not.
  --json          print one JSON object instead of text
  --disk-size N   also reject entries that reach past a disk of N bytes (e.g. 64G)
  --entries N     list the first N entries (default 10; 0 for none, "all" for all)`,
    apply: `Usage: hvr hrl apply <log> --disk <raw image>

Validates the whole log first (including data checksums), then writes its entries in log order into the raw
disk image (later entries win where they overlap). The disk size is the image size: entries past it are
rejected. A log that fails validation leaves the image untouched.`,
    make: `Usage: hvr hrl make --base <raw> --target <raw> --out <log> [--previous <guid>] [--unique-id <guid>]

Compares two raw images of the same size sector by sector (512 bytes) and writes the MS-HRL v2 log that
turns base into target: changed sectors coalesced into entries of at most 4 MiB, with data checksums.
Streams both images; memory stays bounded whatever their size.
  --previous <guid>    PreviousUniqueId (the log this one follows); nil GUID by default
  --unique-id <guid>   UniqueId of the new log; random by default`,
};

class UsageError extends Error {}

function out(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function guidOption(value: string | undefined, name: string): string | undefined {
    if (value === undefined) return undefined;
    if (!isGuid(value.toLowerCase())) throw new UsageError(`--${name} "${value}" is not a GUID (8-4-4-4-12 hex)`);
    return value.toLowerCase();
}

function summary(index: HrlIndex): Record<string, unknown> {
    const h = index.header;
    let first = Infinity;
    let end = 0;
    for (const e of index.entries()) {
        if (e.length === 0) continue;
        first = Math.min(first, e.diskOffset);
        end = Math.max(end, e.diskOffset + e.length);
    }
    return {
        uniqueId: h.uniqueId,
        previousUniqueId: h.previousUniqueId,
        vhd2DataWriteGuid: h.vhd2DataWriteGuid,
        createdAt: h.createdAt.toISOString(),
        lastModifiedAt: h.lastModifiedAt.toISOString(),
        version: `${h.version >>> 16}.${h.version & 0xffff}`,
        creatorApplication: h.creatorApplication,
        metadataSize: h.metadataSize,
        eolLocation: h.eolLocation,
        currentSize: h.currentSize,
        errorCode: h.errorCode,
        totalMetadataEntries: h.totalMetadataEntries,
        metadataBlockCount: index.metadataBlockCount,
        entryCount: index.entryCount,
        dataBytes: index.dataBytes,
        hasDataChecksums: index.hasDataChecksums,
        diskRange: end > 0 ? { start: first, end } : null,
    };
}

async function inspect(argv: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
            json: { type: 'boolean' },
            'disk-size': { type: 'string' },
            entries: { type: 'string' },
            help: { type: 'boolean', short: 'h' },
        },
    });
    if (values.help) return help('inspect');
    const [path, ...extra] = positionals;
    if (!path || extra.length > 0)
        throw new UsageError('inspect takes exactly one log file; see hvr hrl inspect --help');
    const diskSize = values['disk-size'] === undefined ? undefined : parseByteSize(values['disk-size']);
    const listed = values.entries === undefined ? 10 : values.entries === 'all' ? Infinity : Number(values.entries);
    if (!(listed >= 0)) throw new UsageError(`--entries "${values.entries}" is not a count or "all"`);
    const source = await openFileSource(path);
    try {
        const index = await validateHrl(source, { diskSize });
        const s = summary(index);
        if (values.json) {
            out(JSON.stringify(s));
            return 0;
        }
        const lines = [`${path}: valid MS-HRL v${String(s.version)} log`];
        for (const [k, v] of Object.entries(s)) {
            if (k === 'diskRange') continue;
            lines.push(
                `  ${k.padEnd(22)} ${k === 'dataBytes' ? `${String(v)} (${formatByteSize(Number(v))})` : String(v)}`,
            );
        }
        const range = s.diskRange as { start: number; end: number } | null;
        lines.push(`  ${'diskRange'.padEnd(22)} ${range ? `${range.start}..${range.end}` : '(none)'}`);
        const shown = Math.min(listed, index.entryCount);
        if (shown > 0) {
            lines.push('', '  #        diskOffset        length   timestamp  dataChecksum  logOffset');
            for (let i = 0; i < shown; i++) {
                const e = index.entry(i);
                lines.push(
                    `  ${String(i).padEnd(8)} ${String(e.diskOffset).padStart(16)} ${String(e.length).padStart(12)} ` +
                        `${String(e.timestamp).padStart(11)}  0x${e.dataChecksum.toString(16).padStart(8, '0')}  ${e.logOffset}`,
                );
            }
            if (shown < index.entryCount) lines.push(`  ... ${index.entryCount - shown} more (--entries all)`);
        }
        out(lines.join('\n'));
        return 0;
    } finally {
        await source.close();
    }
}

async function apply(argv: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: { disk: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) return help('apply');
    const [path, ...extra] = positionals;
    if (!path || extra.length > 0) throw new UsageError('apply takes exactly one log file; see hvr hrl apply --help');
    if (!values.disk) throw new UsageError('apply needs --disk <raw image>');
    const diskSize = (await stat(values.disk)).size;
    const source = await openFileSource(path);
    try {
        // Nothing touches the image until the whole log, data included, has been checked.
        const index = await validateHrl(source, { diskSize });
        const disk = await open(values.disk, 'r+');
        try {
            for await (const piece of readHrlData(source, index, { verify: true })) {
                let done = 0;
                while (done < piece.data.length) {
                    const { bytesWritten } = await disk.write(
                        piece.data,
                        done,
                        piece.data.length - done,
                        piece.diskOffset + done,
                    );
                    done += bytesWritten;
                }
            }
            await disk.sync();
        } finally {
            await disk.close();
        }
        out(
            `applied ${index.entryCount} entries (${formatByteSize(index.dataBytes)}) of log ${index.header.uniqueId} to ${values.disk}`,
        );
        return 0;
    } finally {
        await source.close();
    }
}

const SECTOR = 512;
const COMPARE_CHUNK = 4 * 1024 * 1024;
const MAX_ENTRY = 4 * 1024 * 1024;

async function readFully(
    handle: Awaited<ReturnType<typeof open>>,
    buf: Buffer,
    length: number,
    position: number,
): Promise<void> {
    let done = 0;
    while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, position + done);
        if (bytesRead === 0) throw new HvrError('VALIDATION_FAILED', `image ended early at offset ${position + done}`);
        done += bytesRead;
    }
}

async function make(argv: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
            base: { type: 'string' },
            target: { type: 'string' },
            out: { type: 'string' },
            previous: { type: 'string' },
            'unique-id': { type: 'string' },
            help: { type: 'boolean', short: 'h' },
        },
    });
    if (values.help) return help('make');
    if (positionals.length > 0)
        throw new UsageError(`unexpected argument "${positionals[0]}"; see hvr hrl make --help`);
    if (!values.base || !values.target || !values.out) throw new UsageError('make needs --base, --target and --out');
    const previousUniqueId = guidOption(values.previous, 'previous');
    const uniqueId = guidOption(values['unique-id'], 'unique-id');
    const [baseSize, targetSize] = [(await stat(values.base)).size, (await stat(values.target)).size];
    if (baseSize !== targetSize) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `base is ${baseSize} bytes but target is ${targetSize}: images must be the same size`,
        );
    }
    if (baseSize % SECTOR !== 0)
        throw new HvrError('VALIDATION_FAILED', `image size ${baseSize} is not a multiple of 512`);
    const base = await open(values.base, 'r');
    const target = await open(values.target, 'r');
    const writer = await HrlFileWriter.create(values.out, { previousUniqueId, uniqueId });
    let entries = 0;
    let bytes = 0;
    try {
        const a = Buffer.allocUnsafe(COMPARE_CHUNK);
        const b = Buffer.allocUnsafe(COMPARE_CHUNK);
        const run = Buffer.allocUnsafe(MAX_ENTRY);
        let runStart = -1;
        let runLength = 0;
        const flush = async (): Promise<void> => {
            if (runLength === 0) return;
            await writer.add(runStart, run.subarray(0, runLength));
            entries++;
            bytes += runLength;
            runLength = 0;
            runStart = -1;
        };
        for (let pos = 0; pos < baseSize; pos += COMPARE_CHUNK) {
            const n = Math.min(COMPARE_CHUNK, baseSize - pos);
            await readFully(base, a, n, pos);
            await readFully(target, b, n, pos);
            if (a.subarray(0, n).equals(b.subarray(0, n))) {
                await flush();
                continue;
            }
            for (let s = 0; s < n; s += SECTOR) {
                const changed = a.compare(b, s, s + SECTOR, s, s + SECTOR) !== 0;
                if (!changed) {
                    await flush();
                    continue;
                }
                if (runLength === MAX_ENTRY) await flush();
                if (runLength === 0) runStart = pos + s;
                b.copy(run, runLength, s, s + SECTOR);
                runLength += SECTOR;
            }
        }
        await flush();
        const header = await writer.close();
        out(
            `wrote ${values.out}: log ${header.uniqueId}, ${entries} entries, ${formatByteSize(bytes)} of changed data`,
        );
        return 0;
    } catch (err) {
        await writer.abandon();
        throw err;
    } finally {
        await base.close();
        await target.close();
    }
}

function help(command?: string): number {
    out(command ? HELP[command]! : USAGE);
    return 0;
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { inspect, apply, make };

/** `hvr hrl ...`: returns the exit code. Errors are one line on stderr, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
    const [command, ...rest] = argv;
    if (!command || command === '--help' || command === '-h' || command === 'help') {
        help();
        return command ? 0 : 2;
    }
    const run = COMMANDS[command];
    if (!run) {
        process.stderr.write(`hvr: unknown hrl command "${command}"; see hvr hrl --help\n`);
        return 2;
    }
    try {
        return await run(rest);
    } catch (err) {
        // Errors from Node built-ins may come from another realm (jest, vm), so no instanceof Error here.
        const nodeCode = (err as { code?: unknown } | null)?.code;
        const usage =
            err instanceof UsageError || (typeof nodeCode === 'string' && nodeCode.startsWith('ERR_PARSE_ARGS'));
        let message =
            typeof (err as { message?: unknown } | null)?.message === 'string' ? (err as Error).message : String(err);
        if (usage) message = message.replace(/\. To specify a positional argument.*$/s, '');
        const code = err instanceof HvrError ? `${err.code}: ` : '';
        process.stderr.write(`hvr: ${code}${message.split('\n')[0]}\n`);
        return usage ? 2 : 1;
    }
}
