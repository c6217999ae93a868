import { logBlobName, parseLogBlobName, parseLogMetadata } from '../../../shared/replica/logBlob';

describe('uploaded log names and metadata', () => {
    const id = '572fc7ff-1f03-49ab-9c3e-0123456789ab';

    it('reads site, VM, disk, chain position and log id from the blob name, and writes it back', () => {
        const parsed = parseLogBlobName(`site1/vm-7/disk_0/42-${id.toUpperCase()}.hrl`);
        expect(parsed).toEqual({ siteId: 'site1', vmId: 'vm-7', diskId: 'disk_0', sequence: 42, logId: id });
        expect(logBlobName(parsed)).toBe(`site1/vm-7/disk_0/42-${id}.hrl`);
    });

    it.each([
        [`site1/vm/42-${id}.hrl`, /3 path segments/],
        [`site1/vm/disk/0-${id}.hrl`, /invalid file name/],
        [`site1/vm/disk/07-${id}.hrl`, /invalid file name/],
        [`site1/vm/disk/4-${id}.vhd`, /invalid file name/],
        [`site1/../disk/4-${id}.hrl`, /invalid VM id/],
    ])('refuses %s', (name, why) => {
        expect(() => parseLogBlobName(name)).toThrow(why);
    });

    it('reads the provider metadata, defaulting to a crash-consistent delta log', () => {
        expect(parseLogMetadata(undefined)).toEqual({
            consistency: 'CrashConsistent',
            resync: false,
            cycleId: undefined,
            capturedAt: undefined,
        });
        expect(
            parseLogMetadata({
                CycleId: 'c-12',
                consistency: 'AppConsistent',
                capturedat: '2026-03-01T10:00:00Z',
                resync: 'true',
            }),
        ).toEqual({
            cycleId: 'c-12',
            consistency: 'AppConsistent',
            capturedAt: '2026-03-01T10:00:00.000Z',
            resync: true,
        });
    });

    it('reads the deprecated crash / app spelling as the contract spelling, so an older upload is not quarantined', () => {
        expect(parseLogMetadata({ consistency: 'app' }).consistency).toBe('AppConsistent');
        expect(parseLogMetadata({ consistency: 'crash' }).consistency).toBe('CrashConsistent');
    });

    it.each([
        [{ consistency: 'fuzzy' }, /consistency="fuzzy" is not CrashConsistent or AppConsistent/],
        [{ consistency: 'appconsistent' }, /consistency="appconsistent"/],
        [{ capturedat: '2026-03-01 10:00' }, /capturedat="2026-03-01 10:00"/],
        [{ cycleid: 'c1.' }, /cycleid="c1\." must be 1–64/],
        [{ capturedat: 'yesterday' }, /capturedat="yesterday"/],
        [{ resync: 'yes' }, /resync="yes"/],
        [{ cycleid: 'a b' }, /cycleid="a b"/],
    ])('refuses metadata %p', (meta, why) => {
        expect(() => parseLogMetadata(meta)).toThrow(why);
    });
});
