import { HvrError } from '../errors';
import { getProtectedItem, StateScope } from '../state/protectedItems';
import { UploadGrantIssuer, UploadTarget } from './uploadGrants';

/** Which disks a VM has, as enabling protection recorded them; undefined for a VM that is not protected. */
export interface VmDiskCatalog {
    diskIdsOf(vmId: string): Promise<readonly string[] | undefined>;
}

/** The disks of the VM's protected item (table ProtectedItems of the scope). */
export function protectedItemDisks(scope: StateScope): VmDiskCatalog {
    return {
        async diskIdsOf(vmId) {
            const item = await getProtectedItem(scope, vmId);
            return item?.disks.map((d) => d.diskId);
        },
    };
}

/**
 * Issues grants only for disks the VM has. The site check (the VM is the signing site's) happens before; this
 * one keeps a provider from opening `replica-logs/{site}/{vm}/{anyDisk}/...` for a disk the pipeline does not
 * replicate. A refused request is a whole refusal: no grant of it is issued.
 */
export class DiskCheckedUploadGrants implements UploadGrantIssuer {
    constructor(
        private readonly inner: UploadGrantIssuer,
        private readonly disks: VmDiskCatalog,
    ) {}

    async issue(targets: UploadTarget[], at: Date): Promise<Awaited<ReturnType<UploadGrantIssuer['issue']>>> {
        const byVm = new Map<string, readonly string[] | undefined>();
        for (const target of targets) {
            if (!byVm.has(target.vmId)) byVm.set(target.vmId, await this.disks.diskIdsOf(target.vmId));
            const known = byVm.get(target.vmId);
            if (!known) {
                throw new HvrError(
                    'UPLOAD_DISK_UNKNOWN',
                    `VM ${target.vmId} has no protected disks recorded; enable protection before uploading logs.`,
                    { vmId: target.vmId, diskId: target.diskId },
                );
            }
            if (!known.includes(target.diskId)) {
                throw new HvrError(
                    'UPLOAD_DISK_UNKNOWN',
                    `VM ${target.vmId} has no disk ${target.diskId} (its disks: ${known.join(', ') || 'none'}); no grant is issued.`,
                    { vmId: target.vmId, diskId: target.diskId, disks: [...known] },
                );
            }
        }
        return this.inner.issue(targets, at);
    }
}
