import { readdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { HvrError, imageSize, requireContractId } from '../../packages/provider-kit/src';

/** Raw disk images are recognised by these extensions. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.raw', '.img'];

export interface FolderDisk {
    diskId: string;
    path: string;
    sizeBytes: number;
    isOsDisk: boolean;
}

export interface FolderVm {
    vmId: string;
    disks: FolderDisk[];
}

function isImage(name: string): boolean {
    return !name.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

function idOf(what: string, name: string): string {
    try {
        return requireContractId(what, name);
    } catch (err) {
        throw new HvrError('VALIDATION_FAILED', `${(err as Error).message} Rename the file or folder.`);
    }
}

async function disksOf(paths: string[]): Promise<FolderDisk[]> {
    const sorted = [...paths].sort();
    const disks: FolderDisk[] = [];
    for (const path of sorted) {
        disks.push({
            diskId: idOf('disk id (the image name)', basename(path, extname(path))),
            path,
            sizeBytes: await imageSize(path),
            isOsDisk: false,
        });
    }
    // The OS disk: the one named `os`, else the first by name.
    const os = disks.find((d) => d.diskId === 'os') ?? disks[0];
    if (os) os.isOsDisk = true;
    return disks;
}

/**
 * The VMs of a folder of raw images: each sub-folder is a VM whose images (`*.raw`, `*.img`) are its disks
 * (an image set), and each image directly in the folder is a VM of one disk. Names become ids (the id rule);
 * folders starting with `.` (the provider's state) are skipped.
 */
export async function readImageFolder(folder: string): Promise<FolderVm[]> {
    let entries;
    try {
        entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
        throw new HvrError('VALIDATION_FAILED', `cannot read the image folder ${folder}: ${(err as Error).message}`);
    }
    const vms: FolderVm[] = [];
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
        if (entry.name.startsWith('.')) continue;
        const path = join(folder, entry.name);
        if (entry.isDirectory()) {
            const images = (await readdir(path)).filter(isImage).map((n) => join(path, n));
            if (images.length === 0) continue;
            vms.push({ vmId: idOf('VM id (the folder name)', entry.name), disks: await disksOf(images) });
        } else if (entry.isFile() && isImage(entry.name)) {
            const vmId = idOf('VM id (the image name)', basename(entry.name, extname(entry.name)));
            const [disk] = await disksOf([path]);
            vms.push({ vmId, disks: [{ ...disk!, diskId: 'os', isOsDisk: true }] });
        }
    }
    const ids = new Set<string>();
    for (const vm of vms) {
        if (ids.has(vm.vmId))
            throw new HvrError('VALIDATION_FAILED', `two entries of ${folder} make VM id ${vm.vmId}.`);
        ids.add(vm.vmId);
    }
    if (vms.length === 0) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `${folder} holds no raw disk image (${IMAGE_EXTENSIONS.join(', ')}), directly or in a sub-folder per VM.`,
        );
    }
    return vms;
}
