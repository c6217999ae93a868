/**
 * The Hyper-V → Azure support matrix for a VM to be protected, as the prerequisites check of the
 * "Enable protection" job applies it. Pure: the VM's description comes from the provider (or the request).
 */

/** One virtual disk of a VM as the provider describes it. */
export interface VmDiskDescription {
    diskId: string;
    /** Virtual size in bytes (the size Azure would see). */
    sizeBytes: number;
    /** Logical sector size in bytes as the guest sees it. */
    logicalSectorBytes: number;
    isOsDisk: boolean;
    /** A shared VHDX (guest clustering) or a VHD Set. */
    shared?: boolean;
}

export interface VmDescription {
    vmId: string;
    name: string;
    generation: 1 | 2;
    disks: VmDiskDescription[];
}

export const SUPPORT_LIMITS = {
    maxDataDisks: 16,
    osDiskMaxGiBGen1: 2048,
    osDiskMaxGiBGen2: 300,
    dataDiskMaxGiB: 4095,
    logicalSectorBytes: 512,
    vmNameMinLength: 1,
    vmNameMaxLength: 63,
} as const;

const GiB = 1024 ** 3;

export type SupportRule =
    | 'VmName'
    | 'Generation'
    | 'OsDiskCount'
    | 'DataDiskCount'
    | 'OsDiskSize'
    | 'DataDiskSize'
    | 'DiskSize'
    | 'LogicalSectorSize'
    | 'SharedDisk'
    | 'DuplicateDisk';

/** One rule the VM breaks, with the value that breaks it. */
export interface SupportViolation {
    rule: SupportRule;
    diskId?: string;
    message: string;
}

function gib(bytes: number): string {
    return `${(bytes / GiB).toFixed(bytes % GiB === 0 ? 0 : 2)} GiB`;
}

/** Every support-matrix rule the VM breaks; an empty list means it can be protected. */
export function checkSupportMatrix(vm: VmDescription): SupportViolation[] {
    const violations: SupportViolation[] = [];
    const nameLength = [...vm.name].length;
    if (nameLength < SUPPORT_LIMITS.vmNameMinLength || nameLength > SUPPORT_LIMITS.vmNameMaxLength) {
        violations.push({
            rule: 'VmName',
            message: `VM name "${vm.name}" is ${nameLength} characters; Azure allows 1–63.`,
        });
    }
    if (vm.generation !== 1 && vm.generation !== 2) {
        violations.push({ rule: 'Generation', message: `VM generation ${String(vm.generation)} is not 1 or 2.` });
    }
    const osDisks = vm.disks.filter((d) => d.isOsDisk);
    const dataDisks = vm.disks.filter((d) => !d.isOsDisk);
    if (osDisks.length !== 1) {
        violations.push({ rule: 'OsDiskCount', message: `VM has ${osDisks.length} OS disks; exactly 1 is required.` });
    }
    if (dataDisks.length > SUPPORT_LIMITS.maxDataDisks) {
        violations.push({
            rule: 'DataDiskCount',
            message: `VM has ${dataDisks.length} data disks; at most ${SUPPORT_LIMITS.maxDataDisks} are supported.`,
        });
    }
    const seen = new Set<string>();
    for (const disk of vm.disks) {
        if (seen.has(disk.diskId)) {
            violations.push({
                rule: 'DuplicateDisk',
                diskId: disk.diskId,
                message: `Disk ${disk.diskId} is listed twice.`,
            });
        }
        seen.add(disk.diskId);
        if (!Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0 || disk.sizeBytes % 512 !== 0) {
            violations.push({
                rule: 'DiskSize',
                diskId: disk.diskId,
                message: `Disk ${disk.diskId} size ${disk.sizeBytes} bytes is not a positive multiple of 512.`,
            });
        } else if (disk.isOsDisk) {
            const maxGiB = vm.generation === 2 ? SUPPORT_LIMITS.osDiskMaxGiBGen2 : SUPPORT_LIMITS.osDiskMaxGiBGen1;
            if (disk.sizeBytes > maxGiB * GiB) {
                violations.push({
                    rule: 'OsDiskSize',
                    diskId: disk.diskId,
                    message: `OS disk ${disk.diskId} is ${gib(disk.sizeBytes)}; a generation ${vm.generation} VM's OS disk may be at most ${maxGiB} GiB.`,
                });
            }
        } else if (disk.sizeBytes > SUPPORT_LIMITS.dataDiskMaxGiB * GiB) {
            violations.push({
                rule: 'DataDiskSize',
                diskId: disk.diskId,
                message: `Data disk ${disk.diskId} is ${gib(disk.sizeBytes)}; at most ${SUPPORT_LIMITS.dataDiskMaxGiB} GiB is supported.`,
            });
        }
        if (disk.logicalSectorBytes !== SUPPORT_LIMITS.logicalSectorBytes) {
            violations.push({
                rule: 'LogicalSectorSize',
                diskId: disk.diskId,
                message: `Disk ${disk.diskId} has ${disk.logicalSectorBytes}-byte logical sectors; Azure needs 512.`,
            });
        }
        if (disk.shared === true) {
            violations.push({
                rule: 'SharedDisk',
                diskId: disk.diskId,
                message: `Disk ${disk.diskId} is a shared VHD; shared disks cannot be replicated.`,
            });
        }
    }
    return violations;
}
