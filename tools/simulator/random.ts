/**
 * A seeded pseudo-random generator (SFC32 seeded through SplitMix32): the same seed gives the same workload on
 * every machine, which `Math.random` cannot. Not for anything secret.
 */
export class SeededRandom {
    private a: number;
    private b: number;
    private c: number;
    private d: number;

    constructor(seed: number) {
        let s = seed >>> 0;
        const splitMix = (): number => {
            s = (s + 0x9e3779b9) >>> 0;
            let z = s;
            z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
            z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
            return (z ^ (z >>> 16)) >>> 0;
        };
        this.a = splitMix();
        this.b = splitMix();
        this.c = splitMix();
        this.d = splitMix();
        for (let i = 0; i < 12; i++) this.uint32();
    }

    /** A derived generator: independent streams per VM and disk from one seed. */
    fork(label: string): SeededRandom {
        let h = this.uint32();
        for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
        return new SeededRandom(h);
    }

    uint32(): number {
        const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
        this.d = (this.d + 1) >>> 0;
        this.a = this.b ^ (this.b >>> 9);
        this.b = (this.c + (this.c << 3)) >>> 0;
        this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
        this.c = (this.c + t) >>> 0;
        return t;
    }

    /** Uniform in [0, 1). */
    float(): number {
        return this.uint32() / 2 ** 32;
    }

    /** Uniform integer in [min, max] (both inclusive). */
    int(min: number, max: number): number {
        return min + Math.floor(this.float() * (max - min + 1));
    }

    /** True with probability p. */
    chance(p: number): boolean {
        return this.float() < p;
    }

    pick<T>(items: readonly T[]): T {
        if (items.length === 0) throw new RangeError('pick from an empty list');
        return items[Math.floor(this.float() * items.length)]!;
    }

    /** Fills `buf` with pseudo-random bytes. */
    fill(buf: Buffer): Buffer {
        const words = Math.floor(buf.length / 4);
        for (let i = 0; i < words; i++) buf.writeUInt32LE(this.uint32(), i * 4);
        for (let i = words * 4; i < buf.length; i++) buf[i] = this.uint32() & 0xff;
        return buf;
    }

    /** A random (version 4 shaped) GUID, lower case. */
    guid(): string {
        const b = this.fill(Buffer.alloc(16));
        b[6] = (b[6]! & 0x0f) | 0x40;
        b[8] = (b[8]! & 0x3f) | 0x80;
        const h = b.toString('hex');
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
}
