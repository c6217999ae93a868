import { HvrError } from '../errors';

/** An Azure VM size and the limits that decide whether a protected VM fits it. */
export interface AzureVmSize {
    name: string;
    cores: number;
    memoryMiB: number;
    maxDataDisks: number;
    maxNics: number;
}

/**
 * General-purpose sizes, smallest first, that a failed-over VM gets by default (ASR picks the smallest size
 * with at least the VM's cores, memory, disks and NICs). Gen 1 and Gen 2 VMs both run on these.
 */
export const AZURE_VM_SIZES: readonly AzureVmSize[] = [
    { name: 'Standard_D2s_v5', cores: 2, memoryMiB: 8 * 1024, maxDataDisks: 4, maxNics: 2 },
    { name: 'Standard_D4s_v5', cores: 4, memoryMiB: 16 * 1024, maxDataDisks: 8, maxNics: 2 },
    { name: 'Standard_D8s_v5', cores: 8, memoryMiB: 32 * 1024, maxDataDisks: 16, maxNics: 4 },
    { name: 'Standard_D16s_v5', cores: 16, memoryMiB: 64 * 1024, maxDataDisks: 32, maxNics: 8 },
    { name: 'Standard_D32s_v5', cores: 32, memoryMiB: 128 * 1024, maxDataDisks: 32, maxNics: 8 },
    { name: 'Standard_D48s_v5', cores: 48, memoryMiB: 192 * 1024, maxDataDisks: 32, maxNics: 8 },
    { name: 'Standard_D64s_v5', cores: 64, memoryMiB: 256 * 1024, maxDataDisks: 32, maxNics: 8 },
];

/** What the protected VM needs. Cores and memory default to the smallest size when the site did not report them. */
export interface VmShape {
    cores?: number;
    memoryMiB?: number;
    dataDisks: number;
    nics: number;
}

const SIZE_NAME = /^Standard_[A-Za-z0-9_]{2,60}$/;

/** The size a failover creates: the operator's choice if given, else the smallest that fits the VM. */
export function chooseVmSize(shape: VmShape, override?: string): string {
    if (override !== undefined) {
        if (!SIZE_NAME.test(override)) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `vmSize must be an Azure size name like Standard_D2s_v5; got "${override}".`,
            );
        }
        return override;
    }
    const fit = AZURE_VM_SIZES.find(
        (s) =>
            s.cores >= (shape.cores ?? 1) &&
            s.memoryMiB >= (shape.memoryMiB ?? 0) &&
            s.maxDataDisks >= shape.dataDisks &&
            s.maxNics >= shape.nics,
    );
    if (!fit) {
        throw new HvrError(
            'PREREQUISITE_FAILED',
            `No default Azure size fits ${shape.cores ?? '?'} cores, ${shape.memoryMiB ?? '?'} MiB, ${shape.dataDisks} data disks and ${shape.nics} NICs; give vmSize.`,
        );
    }
    return fit.name;
}
