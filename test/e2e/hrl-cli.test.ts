import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHrl } from '../../shared/hrl';
import { main } from '../../tools/hrl-cli';

interface Run {
    code: number;
    stdout: string;
    stderr: string;
}

async function hvrHrl(...argv: string[]): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const o = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stdout += chunk.toString();
        return true;
    });
    const e = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stderr += chunk.toString();
        return true;
    });
    try {
        const code = await main(argv);
        return { code, stdout, stderr };
    } finally {
        o.mockRestore();
        e.mockRestore();
    }
}

function expectOneLineError(run: Run, pattern: RegExp): void {
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/^hvr: [^\n]*\n$/);
    expect(run.stderr).toMatch(pattern);
    expect(run.stderr).not.toMatch(/\bat .*:\d+:\d+\)?$/m); // no stack frames
}

describe('hvr hrl', () => {
    let dir: string;
    const path = (name: string): string => join(dir, name);
    const DISK = 8 * 1024 * 1024;

    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'hrl-cli-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    /** A target image: base with scattered changed runs, one crossing the 4 MiB compare chunk. */
    function images(): { base: Buffer; target: Buffer } {
        const base = randomBytes(DISK);
        const target = Buffer.from(base);
        randomBytes(512).copy(target, 0);
        randomBytes(3 * 512).copy(target, 5120);
        randomBytes(64 * 1024).copy(target, 4 * 1024 * 1024 - 32 * 1024);
        randomBytes(512).copy(target, DISK - 512);
        target[3 * 1024 * 1024 + 7]! ^= 0xff;
        writeFileSync(path('base.raw'), base);
        writeFileSync(path('target.raw'), target);
        return { base, target };
    }

    it('makes a log from two images, inspects it, and applying it to the base yields the target', async () => {
        const { target } = images();
        const previous = '572fc7ff-1f03-49ab-8c2d-0123456789ab';
        const made = await hvrHrl(
            'make',
            '--base',
            path('base.raw'),
            '--target',
            path('target.raw'),
            '--out',
            path('d.hrl'),
            '--previous',
            previous,
        );
        expect(made.code).toBe(0);
        expect(made.stdout).toMatch(/5 entries/);

        const inspected = await hvrHrl('inspect', path('d.hrl'), '--json', '--disk-size', '8M');
        expect(inspected.code).toBe(0);
        const json = JSON.parse(inspected.stdout) as Record<string, unknown>;
        expect(json).toMatchObject({
            previousUniqueId: previous,
            entryCount: 5,
            dataBytes: 512 + 3 * 512 + 64 * 1024 + 512 + 512,
            metadataSize: 4096,
            vhd2DataWriteGuid: '00000000-0000-0000-0000-000000000000',
            totalMetadataEntries: 5,
        });
        expect(json.uniqueId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(new Date(json.createdAt as string).toISOString()).toBe(json.createdAt);
        expect(json.eolLocation).toBe(readFileSync(path('d.hrl')).length);

        const text = await hvrHrl('inspect', path('d.hrl'));
        expect(text.code).toBe(0);
        expect(text.stdout).toMatch(/valid MS-HRL v2\.0 log/);

        const applied = await hvrHrl('apply', path('d.hrl'), '--disk', path('base.raw'));
        expect(applied.code).toBe(0);
        expect(readFileSync(path('base.raw')).equals(target)).toBe(true);
    });

    it('applies entries in log order, so the later of two overlapping writes wins', async () => {
        writeFileSync(path('disk.raw'), Buffer.alloc(64 * 1024));
        const { log } = writeHrl([
            { diskOffset: 0, data: Buffer.alloc(2048, 1) },
            { diskOffset: 1024, data: Buffer.alloc(512, 2) },
            { diskOffset: 512, data: Buffer.alloc(512, 3) },
        ]);
        writeFileSync(path('o.hrl'), log);
        expect((await hvrHrl('apply', path('o.hrl'), '--disk', path('disk.raw'))).code).toBe(0);
        const disk = readFileSync(path('disk.raw'));
        expect([disk[0], disk[512], disk[1024], disk[1536], disk[2048]]).toEqual([1, 3, 2, 1, 0]);
    });

    it('leaves the image byte-identical when the log fails validation anywhere, even in its last entry', async () => {
        const { base } = images();
        await hvrHrl('make', '--base', path('base.raw'), '--target', path('target.raw'), '--out', path('d.hrl'));
        const log = readFileSync(path('d.hrl'));
        log[log.length - 4096 - 100]! ^= 1; // data of the last entry, just before the last metadata block
        writeFileSync(path('bad.hrl'), log);
        const run = await hvrHrl('apply', path('bad.hrl'), '--disk', path('base.raw'));
        expectOneLineError(run, /HRL_DATA_CHECKSUM/);
        expect(readFileSync(path('base.raw')).equals(base)).toBe(true);
    });

    it('rejects entries beyond the image size and leaves the image alone', async () => {
        writeFileSync(path('small.raw'), Buffer.alloc(1024 * 1024, 7));
        const { log } = writeHrl([
            { diskOffset: 0, data: Buffer.alloc(512, 1) },
            { diskOffset: 1024 * 1024, data: Buffer.alloc(512, 1) },
        ]);
        writeFileSync(path('far.hrl'), log);
        const run = await hvrHrl('apply', path('far.hrl'), '--disk', path('small.raw'));
        expectOneLineError(run, /HRL_ENTRY_OUT_OF_DISK.*disk offset 1048576/);
        expect(readFileSync(path('small.raw')).equals(Buffer.alloc(1024 * 1024, 7))).toBe(true);
    });

    it('reports a log that was not closed as needing resynchronization', async () => {
        writeFileSync(path('open.hrl'), writeHrl([], { closed: false }).log);
        expectOneLineError(await hvrHrl('inspect', path('open.hrl')), /HRL_NOT_CLOSED.*resynchronization/);
    });

    it('checks --disk-size on inspect, with size suffixes', async () => {
        writeFileSync(path('x.hrl'), writeHrl([{ diskOffset: 2 * 1024 * 1024, data: Buffer.alloc(512) }]).log);
        expect((await hvrHrl('inspect', path('x.hrl'), '--disk-size', '3M')).code).toBe(0);
        expectOneLineError(await hvrHrl('inspect', path('x.hrl'), '--disk-size', '2M'), /HRL_ENTRY_OUT_OF_DISK/);
        expectOneLineError(await hvrHrl('inspect', path('x.hrl'), '--disk-size', 'big'), /invalid size "big"/);
    });

    it('prints help for every command', async () => {
        for (const argv of [['--help'], ['inspect', '--help'], ['apply', '--help'], ['make', '--help']]) {
            const run = await hvrHrl(...argv);
            expect(run.code).toBe(0);
            expect(run.stdout).toMatch(/^Usage: hvr hrl/);
        }
    });

    it('answers usage mistakes and missing files with one line and a non-zero code', async () => {
        expectOneLineError(await hvrHrl('inspect'), /exactly one log/);
        expectOneLineError(await hvrHrl('inspect', path('nope.hrl')), /ENOENT/);
        expectOneLineError(await hvrHrl('apply', path('nope.hrl')), /--disk/);
        expectOneLineError(await hvrHrl('frobnicate'), /unknown hrl command/);
        expectOneLineError(await hvrHrl('inspect', 'a', '--bogus'), /bogus/);
        images();
        expectOneLineError(
            await hvrHrl(
                'make',
                '--base',
                path('base.raw'),
                '--target',
                path('target.raw'),
                '--out',
                path('o.hrl'),
                '--previous',
                'xyz',
            ),
            /not a GUID/,
        );
        writeFileSync(path('short.raw'), Buffer.alloc(512));
        expectOneLineError(
            await hvrHrl('make', '--base', path('base.raw'), '--target', path('short.raw'), '--out', path('o.hrl')),
            /same size/,
        );
    });
});
