/**
 * MS-HRL checksums are one's complements of 32-bit byte sums. Data checksums cover every byte of a log, so the
 * sum must run near memory speed: a small WebAssembly SIMD kernel sums 64 bytes per step over a 1 MiB staging
 * area (copying into it is cheaper than summing in JavaScript), with a JavaScript word-lane sum as the fallback.
 */

const STAGING_BYTES = 1024 * 1024;
/** Below this many bytes the copy and call overhead outweighs the kernel. */
const KERNEL_MIN_BYTES = 1024;

/** The slice of the WebAssembly API used here (the project's `lib` has no DOM types, where it is declared). */
interface WasmApi {
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

interface SumKernel {
    memory: { buffer: ArrayBuffer };
    sum64(this: void, ptr: number, len: number): number;
}

function leb128(n: number): number[] {
    const out: number[] = [];
    do {
        let byte = n & 0x7f;
        n >>>= 7;
        if (n !== 0) byte |= 0x80;
        out.push(byte);
    } while (n !== 0);
    return out;
}

/**
 * The module, assembled by hand: `sum64(ptr, len) -> i32` for len a multiple of 64, and an exported memory.
 * Per 64 bytes: four v128 loads, pairwise-widen u8 -> u16, add, widen u16 -> u32, add into four u32 lanes.
 * Lanes wrap modulo 2^32, which is exactly the arithmetic of the checksum.
 */
function kernelBytes(): Uint8Array {
    const simd = 0xfd;
    const load = (offset: number): number[] => [simd, 0x00, 0x00, ...leb128(offset)];
    const widen8 = [simd, 0x7d]; // i16x8.extadd_pairwise_i8x16_u
    const widen16 = [simd, 0x7f]; // i32x4.extadd_pairwise_i16x8_u
    const add16 = [simd, 0x8e, 0x01]; // i16x8.add
    const add32 = [simd, 0xae, 0x01]; // i32x4.add
    const lane = (i: number): number[] => [0x20, 0x02, simd, 0x1b, i]; // local.get acc; i32x4.extract_lane i
    // prettier-ignore
    const body = [
        0x02, 0x01, 0x7b, 0x01, 0x7f, // locals: acc v128, end i32
        0x20, 0x00, 0x20, 0x01, 0x6a, 0x21, 0x03, // end = ptr + len
        0x02, 0x40, 0x03, 0x40, // block, loop
        0x20, 0x00, 0x20, 0x03, 0x4f, 0x0d, 0x01, // if ptr >= end break
        0x20, 0x02,
        0x20, 0x00, ...load(0), ...widen8,
        0x20, 0x00, ...load(16), ...widen8, ...add16,
        0x20, 0x00, ...load(32), ...widen8, ...add16,
        0x20, 0x00, ...load(48), ...widen8, ...add16,
        ...widen16, ...add32, 0x21, 0x02,
        0x20, 0x00, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0x00, // ptr += 64
        0x0c, 0x00, 0x0b, 0x0b, // continue; end loop; end block
        ...lane(0), ...lane(1), 0x6a, ...lane(2), 0x6a, ...lane(3), 0x6a,
        0x0b,
    ];
    const section = (id: number, bytes: number[]): number[] => [id, ...leb128(bytes.length), ...bytes];
    const name = (s: string): number[] => [s.length, ...Buffer.from(s, 'ascii')];
    // prettier-ignore
    return Uint8Array.from([
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
        ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]),
        ...section(3, [0x01, 0x00]),
        ...section(5, [0x01, 0x00, ...leb128(STAGING_BYTES / 65536)]),
        ...section(7, [0x02, ...name('sum64'), 0x00, 0x00, ...name('memory'), 0x02, 0x00]),
        ...section(10, [0x01, ...leb128(body.length), ...body]),
    ]);
}

let kernel: SumKernel | null | undefined;

function loadKernel(): SumKernel | null {
    if (kernel !== undefined) return kernel;
    try {
        const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
        if (!wasm) throw new Error('no WebAssembly');
        const exports = new wasm.Instance(new wasm.Module(kernelBytes()), {}).exports as unknown as SumKernel;
        kernel = { memory: exports.memory, sum64: exports.sum64 };
    } catch {
        kernel = null; // no SIMD in this runtime: the JavaScript path is correct, only slower
    }
    return kernel;
}

/** Byte sum of `buf[start, end)` modulo 2^32, in JavaScript: two 16-bit lanes per 32-bit word, folded often. */
function byteSumScalar(buf: Uint8Array, start: number, end: number): number {
    let total = 0;
    let i = start;
    while (i < end && (buf.byteOffset + i) % 4 !== 0) total += buf[i++]!;
    const wordCount = (end - i) >>> 2;
    if (wordCount > 0) {
        const words = new Uint32Array(buf.buffer, buf.byteOffset + i, wordCount);
        let w = 0;
        while (w < wordCount) {
            // 256 words keep each 16-bit lane at most 255 * 256, so no lane carries into its neighbour.
            const stop = Math.min(wordCount, w + 256);
            let even = 0;
            let odd = 0;
            for (; w < stop; w++) {
                const x = words[w]!;
                even = (even + (x & 0x00ff00ff)) | 0;
                odd = (odd + ((x >>> 8) & 0x00ff00ff)) | 0;
            }
            total += (even & 0xffff) + (even >>> 16) + (odd & 0xffff) + (odd >>> 16);
        }
        i += wordCount * 4;
    }
    while (i < end) total += buf[i++]!;
    return total >>> 0;
}

/** The sum of the bytes of `buf`, added to `initial`, modulo 2^32. */
export function byteSum(buf: Uint8Array, initial = 0): number {
    let total = initial >>> 0;
    const k = buf.length >= KERNEL_MIN_BYTES ? loadKernel() : null;
    if (!k) return (total + byteSumScalar(buf, 0, buf.length)) >>> 0;
    const staging = new Uint8Array(k.memory.buffer, 0, STAGING_BYTES);
    for (let at = 0; at < buf.length; at += STAGING_BYTES) {
        const n = Math.min(STAGING_BYTES, buf.length - at);
        const whole = n & ~63;
        staging.set(buf.subarray(at, at + whole), 0);
        total = (total + k.sum64(0, whole)) >>> 0;
        if (whole < n) total = (total + byteSumScalar(buf, at + whole, at + n)) >>> 0;
    }
    return total;
}

/** The MS-HRL checksum of a byte sum: its one's complement, as a uint32. */
export function complementOf(sum: number): number {
    return ~sum >>> 0;
}

/** `~(byte sum)` of `buf` with the 4 bytes at `fieldOffset` counted as zero: how every MS-HRL checksum is made. */
export function checksumExcluding(buf: Uint8Array, fieldOffset: number): number {
    const field = buf[fieldOffset]! + buf[fieldOffset + 1]! + buf[fieldOffset + 2]! + buf[fieldOffset + 3]!;
    return complementOf((byteSum(buf) - field) >>> 0);
}
