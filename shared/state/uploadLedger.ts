import { TransactionAction } from '@azure/data-tables';
import type { UploadFacts } from '../replica/chainGap';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import { assertEntityWithinLimits, encodeKey, getEntityOrUndefined, mapTableError } from './tables';

/**
 * What the provider channel saw of a disk's uploads, for the merge's chain-gap rule (shared/replica/chainGap.ts):
 * when the newest upload grant expires, and the highest log position a cycle report listed. Partition = VM,
 * row = disk; each grant request and each cycle report is one transaction (an upsert per disk it names).
 */
export const UPLOAD_LEDGER_TABLE = 'UploadLedger';

/** One log a grant was issued for, with the grant's expiry. */
export interface LedgerGrant {
    diskId: string;
    sequence: number;
    expiresOn: string;
}

/** One log a CycleCompleted listed. */
export interface LedgerReportedLog {
    diskId: string;
    sequence: number;
}

async function upsertPerDisk(
    scope: StateScope,
    vmId: string,
    rows: Map<string, Record<string, unknown>>,
    what: string,
): Promise<void> {
    if (rows.size === 0) return;
    const table = await stateTable(scope, UPLOAD_LEDGER_TABLE);
    const actions: TransactionAction[] = [...rows].map(([diskId, fields]) => {
        const entity = { partitionKey: encodeKey(vmId), rowKey: encodeKey(diskId), diskId, ...fields };
        assertEntityWithinLimits(entity);
        return ['upsert', entity, 'Merge'];
    });
    try {
        await table.submitTransaction(actions, { abortSignal: deadline() });
    } catch (err) {
        throw mapTableError(err, what);
    }
}

/** Records grants just issued: per disk, the newest expiry (grants are issued in time order, so the last wins). */
export async function recordGrantsIssued(scope: StateScope, vmId: string, grants: LedgerGrant[]): Promise<void> {
    const rows = new Map<string, Record<string, unknown>>();
    for (const g of grants) {
        const current = rows.get(g.diskId);
        const newer = !current || Date.parse(g.expiresOn) >= Date.parse(String(current.grantExpiresOn));
        const sequence = Math.max(g.sequence, Number(current?.grantedSequence ?? 0));
        rows.set(g.diskId, {
            grantExpiresOn: newer ? g.expiresOn : current.grantExpiresOn,
            grantedSequence: sequence,
        });
    }
    await upsertPerDisk(scope, vmId, rows, `Upload ledger of VM ${vmId}`);
}

/**
 * Records a cycle report: per disk, the log position it lists. Reports come in cycle order (the provider's
 * session orders its commands), so the newest report holds the highest position.
 */
export async function recordCycleReported(
    scope: StateScope,
    vmId: string,
    cycleId: string,
    logs: LedgerReportedLog[],
    at: string,
): Promise<void> {
    const rows = new Map<string, Record<string, unknown>>();
    for (const l of logs) {
        const sequence = Math.max(l.sequence, Number(rows.get(l.diskId)?.reportedSequence ?? 0));
        rows.set(l.diskId, { reportedSequence: sequence, reportedCycleId: cycleId, reportedAt: at });
    }
    await upsertPerDisk(scope, vmId, rows, `Upload ledger of VM ${vmId}`);
}

/** Forgets the positions cycle reports named for a disk whose chain broke (its resync may reuse them). */
export async function forgetReportedLogs(scope: StateScope, vmId: string, diskId: string): Promise<void> {
    await upsertPerDisk(
        scope,
        vmId,
        new Map([[diskId, { reportedSequence: 0, reportedCycleId: '' }]]),
        `Upload ledger of VM ${vmId}`,
    );
}

/** What the ledger holds for one disk (empty when nothing was recorded). */
export async function getUploadFacts(scope: StateScope, vmId: string, diskId: string): Promise<UploadFacts> {
    const table = await stateTable(scope, UPLOAD_LEDGER_TABLE);
    const e = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), encodeKey(diskId));
    if (!e) return {};
    const facts: UploadFacts = {};
    if (typeof e.grantExpiresOn === 'string') facts.grantExpiresOn = e.grantExpiresOn;
    if (typeof e.reportedSequence === 'number' && e.reportedSequence > 0) facts.reportedSequence = e.reportedSequence;
    if (typeof e.reportedCycleId === 'string' && e.reportedCycleId !== '') facts.reportedCycleId = e.reportedCycleId;
    return facts;
}

/** Forgets a VM's ledger (disable protection removes it with the VM's other rows). */
export async function deleteUploadLedger(scope: StateScope, vmId: string): Promise<void> {
    const table = await stateTable(scope, UPLOAD_LEDGER_TABLE);
    for await (const e of table.listEntities({
        queryOptions: { filter: `PartitionKey eq '${encodeKey(vmId)}'` },
        abortSignal: deadline(),
    })) {
        await table.deleteEntity(e.partitionKey!, e.rowKey!, { abortSignal: deadline() }).catch((err: unknown) => {
            if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        });
    }
}
