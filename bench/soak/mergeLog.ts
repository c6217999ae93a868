import { readFile } from 'node:fs/promises';

/** One merge that applied a log, as the host logged it (functions/mergeReplicaLog.ts's outcome line). */
export interface AppliedMerge {
    /** vmId/diskId/sequence. */
    key: string;
    appliedAt: Date;
    bytes: number;
    indexMs: number;
    verifyMs: number;
    writeMs: number;
    ms: number;
}

const APPLIED =
    /^(\S+) \[mergeReplicaLog\] merge: [^/\s]+\/([^/\s]+)\/([^/\s]+)\/(\d+)-\S+ → applied as log \d+ (\{.*\})$/;

/**
 * The applied merges in a host log whose lines start with an ISO time (bench/soakHost.ts writes them so). A
 * merge carried on by a continuation is counted at its last step.
 */
export function parseAppliedMerges(text: string): AppliedMerge[] {
    const out: AppliedMerge[] = [];
    for (const line of text.split('\n')) {
        const m = APPLIED.exec(line);
        if (!m) continue;
        let metrics: Record<string, unknown> | undefined;
        try {
            metrics = (JSON.parse(m[5]!) as { metrics?: Record<string, unknown> }).metrics;
        } catch {
            continue;
        }
        if (!metrics) continue;
        const num = (k: string) => (typeof metrics[k] === 'number' ? metrics[k] : 0);
        out.push({
            key: `${m[2]}/${m[3]}/${m[4]}`,
            appliedAt: new Date(m[1]!),
            bytes: num('bytes'),
            indexMs: num('indexMs'),
            verifyMs: num('verifyMs'),
            writeMs: num('writeMs'),
            ms: num('ms'),
        });
    }
    return out;
}

export async function readAppliedMerges(path: string): Promise<AppliedMerge[]> {
    return parseAppliedMerges(await readFile(path, 'utf8').catch(() => ''));
}
