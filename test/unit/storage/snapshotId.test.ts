import { blobSnapshotId } from '../../../shared/storage/snapshotId';

describe('blobSnapshotId', () => {
    it('restores the seven fractional digits a date round trip through the real Durable engine drops', () => {
        expect(blobSnapshotId('2026-12-01T23:37:24.864Z')).toBe('2026-12-01T23:37:24.8640000Z');
        expect(blobSnapshotId('2026-12-01T23:37:24Z')).toBe('2026-12-01T23:37:24.0000000Z');
        expect(blobSnapshotId('2026-12-01T23:37:24.8640000Z')).toBe('2026-12-01T23:37:24.8640000Z');
    });

    it('leaves anything that is not such a time as it is', () => {
        for (const id of ['', 'snap-1', '2026-12-01T23:37:24.864+01:00', '2026-12-01T23:37:24.12345678Z']) {
            expect(blobSnapshotId(id)).toBe(id);
        }
    });
});
