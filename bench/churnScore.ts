import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
    ChurnBaseline,
    ChurnSampler,
    learnBaseline,
    scoreDiskChurn,
    SUSPICIOUS_SCORE,
} from '../shared/replica/churnSignal';

/**
 * `npm run bench -- churnScore`: the suspicious-churn score's false-positive and detection rates on a corpus made
 * from this machine's own files, not from the simulator's writes. A disk's usual is learned as the app learns
 * it (its initial copy, then ordinary cycles of text and binaries), then one cycle of each kind is scored:
 * copies of gzip and xz archives of real files, PNG/JPEG images, database-page churn, a bulk restore of
 * binaries (not attacks), and in-place AES encryption of the disk's data at several shares of the disk
 * (attacks); and the same on a guest whose volume is already encrypted (BitLocker-like: every write random).
 * The data goes through the merge's own sampler (churnSignal.ChurnSampler), 1 MiB writes.
 */
const MiB = 1024 * 1024;
const DISK = 4 * 1024 * MiB;
const POOL_LIMIT = 48 * MiB;

function concatFiles(dir: string, match: (name: string) => boolean, limit = POOL_LIMIT): Buffer {
    const parts: Buffer[] = [];
    let total = 0;
    // Bounded walk: a pattern with few matches must not stat the whole tree.
    let visits = 0;
    const walk = (d: string): void => {
        if (++visits > 20_000) return;
        let entries: string[];
        try {
            entries = readdirSync(d);
        } catch {
            return;
        }
        for (const e of entries.sort()) {
            if (total >= limit || visits > 20_000) return;
            visits++;
            const p = join(d, e);
            let st;
            try {
                st = statSync(p);
            } catch {
                continue;
            }
            if (st.isDirectory()) walk(p);
            else if (st.isFile() && st.size > 4096 && match(e)) {
                try {
                    const b = readFileSync(p);
                    parts.push(b);
                    total += b.length;
                } catch {
                    // unreadable: skip
                }
            }
        }
    };
    walk(dir);
    return Buffer.concat(parts).subarray(0, limit);
}

function xz(data: Buffer): Buffer {
    return execFileSync('xz', ['-6', '-T2', '-c'], { input: data, maxBuffer: 256 * MiB });
}

function aes(data: Buffer, seed: string): Buffer {
    const key = createHash('sha256').update(seed).digest();
    const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    return Buffer.concat([c.update(data), c.final()]);
}

/** Database pages: 8 KiB pages of rows (ids, dates, names from real text), a header and free space. */
function databasePages(text: Buffer, bytes: number, seed: number): Buffer {
    const out = Buffer.alloc(bytes);
    const words = text
        .toString('latin1')
        .split(/\s+/)
        .filter((w) => w.length > 2 && w.length < 20);
    let s = seed;
    const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
    for (let page = 0; page * 8192 < bytes; page++) {
        const base = page * 8192;
        out.writeUInt32LE(page, base);
        out.writeUInt32LE(next(), base + 4);
        let at = base + 96;
        while (at < base + 8192 * 0.8) {
            const row = `${next() % 1_000_000}|2026-0${1 + (next() % 9)}-1${next() % 9}|${words[next() % words.length] ?? 'x'} ${words[next() % words.length] ?? 'y'}|${(next() % 100000) / 100}\n`;
            at += out.write(row, at, 'latin1');
        }
    }
    return out;
}

interface Scenario {
    name: string;
    attack: boolean;
    /** The disk's usual content and writes. */
    disk: 'ordinary' | 'encryptedGuest';
    /** Share of the disk the cycle writes, and where its data comes from. */
    share: number;
    data: (trial: number) => Buffer;
}

/** One cycle's writes through the sampler, cycling through `pool` from a trial-dependent offset. */
function measure(pool: Buffer, bytes: number, offset: number) {
    const sampler = new ChurnSampler();
    let at = offset % Math.max(1, pool.length - MiB);
    for (let done = 0; done < bytes; done += MiB) {
        const n = Math.min(MiB, bytes - done);
        if (at + n > pool.length) at = 0;
        sampler.observe(pool.subarray(at, at + n));
        at += n;
    }
    return sampler.result();
}

export async function bench(): Promise<Record<string, unknown>> {
    const started = performance.now();
    process.stderr.write('churnScore bench: building the corpus from files on this machine\n');
    const docs = concatFiles('/usr/share/doc', (n) => !/\.(gz|xz|bz2|zip|png|jpe?g)$/.test(n));
    const binaries = concatFiles('/usr/lib/x86_64-linux-gnu', (n) => /\.so/.test(n));
    const mixed = Buffer.concat([docs.subarray(0, 24 * MiB), binaries.subarray(0, 24 * MiB)]);
    const gz = gzipSync(mixed, { level: 6 });
    const xzed = xz(mixed.subarray(0, 32 * MiB));
    const images = Buffer.concat([
        concatFiles('/usr/share', (n) => /\.png$/.test(n), 24 * MiB),
        concatFiles('/usr/share/doc', (n) => /\.jpe?g$/.test(n), 24 * MiB),
        concatFiles('/usr/lib/python3', (n) => /\.jpe?g$/.test(n), 24 * MiB),
    ]);
    const db = databasePages(docs, 32 * MiB, 7);
    const ciphertext = aes(mixed, 'corpus');
    const pools = { docs, binaries, mixed, gz, xz: xzed, images, db, ciphertext };
    const sizes = Object.fromEntries(Object.entries(pools).map(([k, v]) => [k, Math.round(v.length / MiB)]));

    const scenarios: Scenario[] = [];
    for (const share of [0.02, 0.05, 0.15, 0.3]) {
        scenarios.push({
            name: `copy gzip archives ${share * 100}%`,
            attack: false,
            disk: 'ordinary',
            share,
            data: () => gz,
        });
        scenarios.push({
            name: `copy xz archives ${share * 100}%`,
            attack: false,
            disk: 'ordinary',
            share,
            data: () => xzed,
        });
        scenarios.push({
            name: `copy images ${share * 100}%`,
            attack: false,
            disk: 'ordinary',
            share,
            data: () => images,
        });
        scenarios.push({
            name: `database churn ${share * 100}%`,
            attack: false,
            disk: 'ordinary',
            share,
            data: () => db,
        });
        scenarios.push({
            name: `bulk restore ${share * 100}%`,
            attack: false,
            disk: 'ordinary',
            share,
            data: () => binaries,
        });
        scenarios.push({
            name: `encrypt in place ${share * 100}%`,
            attack: true,
            disk: 'ordinary',
            share,
            data: () => ciphertext,
        });
        scenarios.push({
            name: `encrypted guest: bulk copy ${share * 100}%`,
            attack: false,
            disk: 'encryptedGuest',
            share,
            data: () => ciphertext,
        });
        scenarios.push({
            name: `encrypted guest: ransomware ${share * 100}%`,
            attack: true,
            disk: 'encryptedGuest',
            share,
            data: () => ciphertext,
        });
    }
    const TRIALS = 8;
    const rows: Record<string, unknown>[] = [];
    let falsePositives = 0;
    let benign = 0;
    let detected = 0;
    let attacks = 0;
    for (const sc of scenarios) {
        let flagged = 0;
        let scoreSum = 0;
        for (let t = 0; t < TRIALS; t++) {
            // The disk's usual: its initial copy (25 % of the disk), then 12 ordinary cycles of 0.2–0.8 %.
            const usual = sc.disk === 'ordinary' ? mixed : ciphertext;
            let baseline: ChurnBaseline | undefined;
            const initialBytes = DISK / 4;
            baseline = learnBaseline(
                baseline,
                scoreDiskChurn(measure(usual, initialBytes, t * 7 * MiB), initialBytes, DISK, baseline),
            );
            for (let c = 0; c < 12; c++) {
                const bytes = Math.round((DISK * (0.002 + ((c * 37 + t * 11) % 7) / 1000)) / 512) * 512;
                const source = sc.disk === 'ordinary' ? (c % 2 ? docs : db) : ciphertext;
                const churn = scoreDiskChurn(measure(source, bytes, (c + t) * 3 * MiB), bytes, DISK, baseline);
                baseline = learnBaseline(baseline, churn);
            }
            const bytes = Math.round((DISK * sc.share) / 512) * 512;
            const scored = scoreDiskChurn(measure(sc.data(t), bytes, t * 5 * MiB), bytes, DISK, baseline);
            scoreSum += scored.score;
            if (scored.score >= SUSPICIOUS_SCORE) flagged++;
        }
        if (sc.attack) {
            attacks += TRIALS;
            detected += flagged;
        } else {
            benign += TRIALS;
            falsePositives += flagged;
        }
        rows.push({
            scenario: sc.name,
            attack: sc.attack,
            flagged: `${flagged}/${TRIALS}`,
            meanScore: Math.round((scoreSum / TRIALS) * 1000) / 1000,
        });
        process.stderr.write(`churnScore bench: ${sc.name}: ${flagged}/${TRIALS} flagged\n`);
    }
    const ordinary = (r: Record<string, unknown>): boolean => !String(r.scenario).startsWith('encrypted guest');
    const rate = (pred: (r: Record<string, unknown>) => boolean, attack: boolean): number => {
        const chosen = rows.filter((r) => pred(r) && r.attack === attack);
        const hits = chosen.reduce((n, r) => n + Number(String(r.flagged).split('/')[0]), 0);
        return Math.round((hits / (chosen.length * TRIALS)) * 1000) / 1000;
    };
    return {
        bench: 'churnScore',
        diskGiB: DISK / (1024 * MiB),
        trialsPerScenario: TRIALS,
        corpusMiB: sizes,
        falsePositiveRate: Math.round((falsePositives / benign) * 1000) / 1000,
        detectionRate: Math.round((detected / attacks) * 1000) / 1000,
        ordinaryDisk: { falsePositiveRate: rate(ordinary, false), detectionRate: rate(ordinary, true) },
        encryptedGuest: {
            falsePositiveRate: rate((r) => !ordinary(r), false),
            detectionRate: rate((r) => !ordinary(r), true),
        },
        scenarios: rows,
        ms: Math.round(performance.now() - started),
    };
}
