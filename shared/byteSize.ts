import { HvrError } from './errors';

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/**
 * Parses a byte count as people type it for disks: `4096`, `64M`, `1.5G`, `2TiB`, `512k`. Suffixes are binary
 * (K = 1024), with or without `i`/`B`, any case. The result must be a whole number of bytes.
 * Throws VALIDATION_FAILED naming the text otherwise.
 */
export function parseByteSize(text: string): number {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(text);
    const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
    const bytes = match && unit !== undefined ? Number(match[1]) * unit : NaN;
    if (!Number.isSafeInteger(bytes)) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `invalid size "${text}": expected a whole number of bytes, optionally with K, M, G, T or P (binary), e.g. 64M`,
            { value: text },
        );
    }
    return bytes;
}

/** A byte count for people: `64 MiB`, `1.5 GiB`, `512 B`. */
export function formatByteSize(bytes: number): string {
    const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let value = bytes;
    let i = 0;
    while (Math.abs(value) >= 1024 && i < names.length - 1) {
        value /= 1024;
        i++;
    }
    const shown = i === 0 || Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
    return `${shown} ${names[i]}`;
}
