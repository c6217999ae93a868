import fc from 'fast-check';
import {
    logBlobName,
    logUploadPath,
    parseLogBlobName,
    parseReplicaBlobName,
    REPLICA_LOGS_CONTAINER,
    replicaBlobName,
} from '../../../shared/contracts/blobNames';
import {
    ID_MAX_LENGTH,
    ID_PATTERN,
    isContractId,
    LOG_ID_PATTERN,
    requireContractId,
} from '../../../shared/contracts/ids';
import { validateCommand, validateEvent } from '../../../shared/contracts/validate';

/** Ids the rule accepts, of every length up to the limit. */
const contractId = fc.stringMatching(new RegExp(ID_PATTERN));
/** Strings near the rule's edges: its alphabet plus a few others, lengths around the limit. */
const idLike = fc.oneof(
    fc.string({
        unit: fc.constantFrom('a', 'Z', '0', '.', '_', '-', '/', ' ', ':', 'é'),
        maxLength: ID_MAX_LENGTH + 8,
    }),
    contractId.map((id) => `${id}.`),
    contractId.map((id) => id.padEnd(ID_MAX_LENGTH + 1, 'x')),
    fc.string({ maxLength: 80 }),
);
const logId = fc.uuid().map((u) => u.toLowerCase());
const sequence = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const log = fc.record({ siteId: contractId, vmId: contractId, diskId: contractId, sequence, logId });

function schemaAcceptsVmId(vmId: string): boolean {
    try {
        validateCommand({ type: 'InitialReplicationProgress', version: 1, vmId, disks: { d0: 50 } });
        return true;
    } catch {
        return false;
    }
}

describe('one rule for ids and names, everywhere', () => {
    it('the schemas accept exactly the ids the rule accepts', () => {
        fc.assert(
            fc.property(fc.oneof(contractId, idLike), (id) => {
                expect(schemaAcceptsVmId(id)).toBe(isContractId(id));
            }),
            { numRuns: 2000 },
        );
    });

    it('the API check refuses exactly what the rule refuses, naming the rule', () => {
        fc.assert(
            fc.property(idLike, (id) => {
                if (isContractId(id)) expect(requireContractId('vmId', id)).toBe(id);
                else expect(() => requireContractId('vmId', id)).toThrow(/vmId must be 1–64 letters, digits/);
            }),
        );
    });

    it('reads back every log blob name it builds: parse(build(x)) = x', () => {
        fc.assert(
            fc.property(log, (x) => {
                expect(parseLogBlobName(logBlobName(x))).toEqual(x);
                expect(logUploadPath(x)).toBe(`${REPLICA_LOGS_CONTAINER}/${logBlobName(x)}`);
            }),
            { numRuns: 1000 },
        );
    });

    it('names a log the same whatever the case of its UniqueId', () => {
        fc.assert(
            fc.property(log, (x) => {
                expect(logBlobName({ ...x, logId: x.logId.toUpperCase() })).toBe(logBlobName(x));
            }),
        );
    });

    it('refuses to build or parse a log name with a part the rule refuses', () => {
        fc.assert(
            fc.property(log, idLike, fc.constantFrom('siteId', 'vmId', 'diskId'), (x, bad, part) => {
                fc.pre(!isContractId(bad) && !bad.includes('/'));
                const wrong = { ...x, [part]: bad };
                expect(() => logBlobName(wrong)).toThrow(/must be 1–64/);
                const name = `${wrong.siteId}/${wrong.vmId}/${wrong.diskId}/${x.sequence}-${x.logId}.hrl`;
                expect(() => parseLogBlobName(name)).toThrow(/invalid/);
            }),
        );
    });

    it('reads back every replica blob name it builds', () => {
        fc.assert(
            fc.property(contractId, contractId, (vmId, diskId) => {
                expect(parseReplicaBlobName(replicaBlobName(vmId, diskId))).toEqual({ vmId, diskId });
            }),
            { numRuns: 1000 },
        );
    });

    it('an UploadGrantRequest the schema accepts gets an upload path the merge reads back to the same log', () => {
        fc.assert(
            fc.property(log, fc.uuid(), (x, mixedCaseId) => {
                const logIdAsSent = mixedCaseId.toUpperCase();
                const command = {
                    type: 'UploadGrantRequest',
                    version: 1,
                    vmId: x.vmId,
                    requestId: 'r1',
                    uploads: [{ diskId: x.diskId, sequence: x.sequence, logId: logIdAsSent }],
                };
                expect(() => validateCommand(command)).not.toThrow();
                const path = logUploadPath({ ...x, logId: logIdAsSent });
                const grant = {
                    type: 'UploadGrant',
                    version: 1,
                    vmId: x.vmId,
                    requestId: 'r1',
                    grants: [
                        {
                            diskId: x.diskId,
                            sequence: x.sequence,
                            logId: logIdAsSent,
                            blobPath: path,
                            url: `https://acct.blob.core.windows.net/${path}?sp=cw`,
                            expiresOn: '2026-01-01T00:00:00Z',
                        },
                    ],
                };
                expect(() => validateEvent(grant)).not.toThrow();
                const parsed = parseLogBlobName(path.slice(REPLICA_LOGS_CONTAINER.length + 1));
                expect(parsed).toEqual({ ...x, logId: logIdAsSent.toLowerCase() });
            }),
            { numRuns: 300 },
        );
    });

    it('the schemas take a logId only in the UniqueId form the blob name needs', () => {
        fc.assert(
            fc.property(fc.oneof(fc.uuid(), fc.string({ maxLength: 40 })), (id) => {
                const command = {
                    type: 'UploadGrantRequest',
                    version: 1,
                    vmId: 'vm1',
                    requestId: 'r1',
                    uploads: [{ diskId: 'd0', sequence: 1, logId: id }],
                };
                const accepted = (() => {
                    try {
                        validateCommand(command);
                        return true;
                    } catch {
                        return false;
                    }
                })();
                expect(accepted).toBe(new RegExp(LOG_ID_PATTERN).test(id));
            }),
        );
    });
});
