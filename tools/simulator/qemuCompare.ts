import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';

/** Where Debian's qemu-utils puts it (`.ci/run` installs it); elsewhere the check says it was not made. */
export const QEMU_IMG = '/usr/bin/qemu-img';
const QEMU_TIMEOUT_MS = 5 * 60_000;

export type QemuVerdict = 'identical' | 'differs' | 'unavailable';

/**
 * A second opinion from another implementation of the VHD format: `qemu-img compare -f raw -F vpc` reads the
 * fixed VHD through its footer, as Azure's import does, and compares it with the raw source.
 */
export async function qemuCompare(
    rawPath: string,
    vhdPath: string,
): Promise<{ verdict: QemuVerdict; detail?: string }> {
    try {
        await access(QEMU_IMG);
    } catch {
        return { verdict: 'unavailable', detail: `${QEMU_IMG} is not installed` };
    }
    return new Promise((resolve) => {
        execFile(
            QEMU_IMG,
            ['compare', '-f', 'raw', '-F', 'vpc', rawPath, vhdPath],
            { timeout: QEMU_TIMEOUT_MS },
            (err, stdout, stderr) => {
                if (!err) return resolve({ verdict: 'identical' });
                const text = `${stdout}${stderr}`.trim().split('\n').slice(0, 2).join(' ');
                resolve({ verdict: 'differs', detail: text || err.message });
            },
        );
    });
}
