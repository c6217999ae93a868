import { UploadGrantItem } from '../contracts/messages';
import { StateScope } from '../state/protectedItems';
import { recordGrantsIssued } from '../state/uploadLedger';
import { UploadGrantIssuer, UploadTarget } from './uploadGrants';

/**
 * Records every grant it issues in the upload ledger (per disk: the newest expiry) before handing it out, so the
 * merge can tell a log nobody can upload any more from one whose slow upload is still under way
 * (shared/replica/chainGap.ts). A ledger write that fails fails the request: no grant goes out unrecorded.
 */
export class LedgeredUploadGrants implements UploadGrantIssuer {
    constructor(
        private readonly inner: UploadGrantIssuer,
        private readonly scope: StateScope,
    ) {}

    async issue(targets: UploadTarget[], at: Date): Promise<UploadGrantItem[]> {
        const grants = await this.inner.issue(targets, at);
        const byVm = new Map<string, { diskId: string; sequence: number; expiresOn: string }[]>();
        for (const [i, grant] of grants.entries()) {
            const vmId = targets[i]?.vmId;
            if (!vmId) continue;
            const list = byVm.get(vmId) ?? [];
            list.push({ diskId: grant.diskId, sequence: grant.sequence, expiresOn: grant.expiresOn });
            byVm.set(vmId, list);
        }
        for (const [vmId, list] of byVm) await recordGrantsIssued(this.scope, vmId, list);
        return grants;
    }
}
