import { checkSupportMatrix, VmDescription, VmDiskDescription } from '../../../shared/supportMatrix';

const GiB = 1024 ** 3;

function disk(id: string, sizeGiB: number, extra: Partial<VmDiskDescription> = {}): VmDiskDescription {
    return { diskId: id, sizeBytes: sizeGiB * GiB, logicalSectorBytes: 512, isOsDisk: false, ...extra };
}

function vm(overrides: Partial<VmDescription> = {}): VmDescription {
    return {
        vmId: 'vm-1',
        name: 'web01',
        generation: 2,
        disks: [disk('os', 127, { isOsDisk: true }), disk('data1', 500)],
        ...overrides,
    };
}

const rules = (v: VmDescription) => checkSupportMatrix(v).map((x) => x.rule);

describe('support matrix', () => {
    it('accepts a VM within every limit', () => {
        expect(checkSupportMatrix(vm())).toEqual([]);
    });

    it('allows 16 data disks and refuses 17', () => {
        const data = (n: number) => Array.from({ length: n }, (_, i) => disk(`d${i}`, 10));
        expect(rules(vm({ disks: [disk('os', 100, { isOsDisk: true }), ...data(16)] }))).toEqual([]);
        const v = checkSupportMatrix(vm({ disks: [disk('os', 100, { isOsDisk: true }), ...data(17)] }));
        expect(v).toEqual([expect.objectContaining({ rule: 'DataDiskCount', message: expect.stringContaining('17') })]);
    });

    it('limits a generation 1 OS disk to 2,048 GB', () => {
        expect(rules(vm({ generation: 1, disks: [disk('os', 2048, { isOsDisk: true })] }))).toEqual([]);
        expect(rules(vm({ generation: 1, disks: [disk('os', 2049, { isOsDisk: true })] }))).toEqual(['OsDiskSize']);
    });

    it('limits a generation 2 OS disk to 300 GB', () => {
        expect(rules(vm({ generation: 2, disks: [disk('os', 300, { isOsDisk: true })] }))).toEqual([]);
        const v = checkSupportMatrix(vm({ generation: 2, disks: [disk('os', 301, { isOsDisk: true })] }));
        expect(v[0]).toMatchObject({ rule: 'OsDiskSize', diskId: 'os', message: expect.stringContaining('301 GiB') });
    });

    it('limits data disks to 4,095 GB', () => {
        expect(rules(vm({ disks: [disk('os', 100, { isOsDisk: true }), disk('big', 4095)] }))).toEqual([]);
        expect(rules(vm({ disks: [disk('os', 100, { isOsDisk: true }), disk('big', 4096)] }))).toEqual([
            'DataDiskSize',
        ]);
    });

    it('needs 512-byte logical sectors', () => {
        const v = checkSupportMatrix(vm({ disks: [disk('os', 100, { isOsDisk: true, logicalSectorBytes: 4096 })] }));
        expect(v).toEqual([
            expect.objectContaining({ rule: 'LogicalSectorSize', message: expect.stringContaining('4096') }),
        ]);
    });

    it('needs a VM name of 1 to 63 characters', () => {
        expect(rules(vm({ name: 'x'.repeat(63) }))).toEqual([]);
        expect(rules(vm({ name: 'x'.repeat(64) }))).toEqual(['VmName']);
        expect(rules(vm({ name: '' }))).toEqual(['VmName']);
    });

    it('refuses shared VHDs', () => {
        expect(
            rules(vm({ disks: [disk('os', 100, { isOsDisk: true }), disk('quorum', 1, { shared: true })] })),
        ).toEqual(['SharedDisk']);
    });

    it('needs exactly one OS disk and distinct disk ids', () => {
        expect(rules(vm({ disks: [disk('a', 10)] }))).toEqual(['OsDiskCount']);
        expect(rules(vm({ disks: [disk('os', 10, { isOsDisk: true }), disk('os', 10)] }))).toEqual(['DuplicateDisk']);
    });

    it('reports every broken rule at once', () => {
        const v = vm({ name: '', disks: [disk('os', 400, { isOsDisk: true, logicalSectorBytes: 4096 })] });
        expect(rules(v).sort()).toEqual(['LogicalSectorSize', 'OsDiskSize', 'VmName']);
    });
});
