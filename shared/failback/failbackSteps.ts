import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RestError } from '@azure/storage-blob';
import { FailbackPhase, StartFailbackDisk } from '../contracts/messages';
import { OutgoingProviderEvent, ProviderEventPublisher } from '../contracts/publisher';
import { HvrError } from '../errors';
import { HrlFileWriter } from '../hrl';
import {
    ByteRange,
    defaultGeometry,
    Digester,
    DigestGeometry,
    NodeRange,
    randomDigestSeed,
    seedFromHex,
    seedToHex,
} from '../resync/digest';
import { decodeDigestRequest, encodeDigestRequest } from '../resync/manifest';
import { writtenRanges } from '../resync/target';
import { getDrill } from '../state/drills';
import { getProtectedItem, StateScope } from '../state/protectedItems';
import { deadline } from '../storage/deadline';
import { readOnlyUrl, writeOnlyUrl } from '../storage/readOnlyUrl';
import { AzureVmControl, AzureVmPowerState, AzureVmRef } from './azureVm';
import { compareFailbackRound, leafRangesToBytes, rootDigestOfDisk, roundOneRanges } from './comparison';
import {
    FAILBACK_CONTAINER,
    failbackDifferingBlobName,
    failbackLogBlobName,
    failbackManifestBlobName,
    failbackPrefix,
} from './names';

/**
 * The steps of a failback as activity bodies (orchestrations/failback.ts calls them): plan, start a round, compare
 * a round, write the difference log, hand it to the provider, and the VM in Azure's power. Each is idempotent, so
 * the orchestration may retry it; each returns values only (names, counts, digests), never disk bytes.
 */

/** What a failback works with: the VM in Azure, the disks to bring level and the digest seed. */
export interface FailbackPlan {
    vm: AzureVmRef;
    /** The digest seed of this failback, 16 hex digits (drawn here; the activity's result keeps it for replays). */
    seed: string;
    disks: { diskId: string; sizeBytes: number }[];
    geometry: Omit<DigestGeometry, 'diskSize'>;
    /** The Azure VM's power state when planned. */
    powerState: AzureVmPowerState;
}

export interface FailbackDeps {
    state: StateScope;
    control: AzureVmControl;
    publish: ProviderEventPublisher['publish'];
    grantMinutes: number;
}

/** Largest manifest the cloud reads (the digests of an 8 TiB disk at one level are 2 GiB; 256 MiB is 16 TiB of 1 MiB blocks). */
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
/** A difference log upload and a manifest read get this long per call. */
const BLOB_TIMEOUT_MS = 30 * 60_000;

/**
 * Prerequisites: the item is failed over and names its failover, the VM in Azure exists (VM_NOT_FOUND otherwise,
 * the reason named) and its disks match the protected ones.
 */
export async function planFailback(
    deps: FailbackDeps,
    input: { vmId: string; failbackId: string; drillId: string },
): Promise<FailbackPlan> {
    const item = await getProtectedItem(deps.state, input.vmId);
    if (!item) throw new HvrError('NOT_FOUND', `VM ${input.vmId} is not protected.`);
    const drill = await getDrill(deps.state, input.vmId, input.drillId);
    if (!drill || !drill.machine) {
        throw new HvrError(
            'VM_NOT_FOUND',
            `The failover ${input.drillId} of VM ${input.vmId} records no virtual machine in Azure; nothing to fail back from.`,
        );
    }
    const disks = item.disks.map((d) => {
        const failoverBlob = [...drill.failoverBlobs].reverse().find((b) => b.endsWith(`/${d.diskId}.vhd`));
        const managed = drill.machine!.disks.find((m) => m.diskId === d.diskId);
        if (!failoverBlob || !managed) {
            throw new HvrError(
                'VM_NOT_FOUND',
                `The virtual machine in Azure for ${input.vmId} has no disk ${d.diskId} (failover ${input.drillId}).`,
            );
        }
        return {
            diskId: d.diskId,
            isOsDisk: d.isOsDisk,
            managedDiskName: managed.name,
            failoverBlob,
            sizeBytes: d.sizeBytes,
        };
    });
    const vm: AzureVmRef = {
        vmId: input.vmId,
        failbackId: input.failbackId,
        vmName: drill.machine.name,
        disks: disks.map(({ sizeBytes: _size, ...d }) => d),
    };
    const powerState = await deps.control.powerState(vm);
    if (powerState === 'missing') {
        throw new HvrError(
            'VM_NOT_FOUND',
            `The virtual machine ${drill.machine.name} in Azure (failover ${input.drillId}) or one of its disks is ` +
                'missing: there is nothing to fail back from. Nothing on premises was changed.',
        );
    }
    const g = defaultGeometry(disks[0]?.sizeBytes ?? 512);
    return {
        vm,
        seed: seedToHex(randomDigestSeed()),
        disks: disks.map((d) => ({ diskId: d.diskId, sizeBytes: d.sizeBytes })),
        geometry: { leafSize: g.leafSize, fanout: g.fanout, levels: g.levels },
        powerState,
    };
}

function geometryOf(plan: Pick<FailbackPlan, 'geometry'>, sizeBytes: number): DigestGeometry {
    return { ...plan.geometry, diskSize: sizeBytes };
}

/** One disk's round to start: round 1 describes every coarse block, later ones the nodes of `request`. */
export interface RoundToStart {
    diskId: string;
    sizeBytes: number;
    round: number;
    level: number;
    /** Base64 digest request (rounds after the first). */
    request?: string;
}

/** Signs a write-only link per manifest and sends StartFailback. The message id names the rounds: a retry is a duplicate. */
export async function sendStartFailback(
    deps: FailbackDeps,
    input: {
        vmId: string;
        siteId: string;
        failbackId: string;
        phase: FailbackPhase;
        plan: Pick<FailbackPlan, 'seed' | 'geometry'>;
        disks: RoundToStart[];
    },
): Promise<null> {
    const conn = deps.state.conn;
    const disks: StartFailbackDisk[] = [];
    for (const d of input.disks) {
        const link = await writeOnlyUrl(
            conn,
            FAILBACK_CONTAINER,
            failbackManifestBlobName(input.vmId, input.failbackId, input.phase, d.diskId, d.round),
            deps.grantMinutes,
        );
        disks.push({
            diskId: d.diskId,
            sizeBytes: d.sizeBytes,
            round: d.round,
            level: d.level,
            ...(d.request !== undefined ? { request: d.request } : {}),
            manifestUrl: link.url,
            manifestExpiresOn: link.expiresOn,
        });
    }
    const rounds = input.disks.map((d) => `${d.diskId}.${d.round}`).join(',');
    await deps.publish({
        type: 'StartFailback',
        siteId: input.siteId,
        vmId: input.vmId,
        messageId: `StartFailback:${input.failbackId}:${input.phase}:${rounds}`.slice(0, 128),
        payload: {
            ...digestHeader(input),
            disks,
        },
    });
    return null;
}

/** What StartFailback and FailbackLogReady both carry: the failback, its phase and the digest tree's shape. */
function digestHeader(input: {
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    plan: Pick<FailbackPlan, 'seed' | 'geometry'>;
}) {
    return {
        vmId: input.vmId,
        failbackId: input.failbackId,
        phase: input.phase,
        seed: input.plan.seed,
        leafSizeBytes: input.plan.geometry.leafSize,
        fanout: input.plan.geometry.fanout,
        levels: input.plan.geometry.levels,
    };
}

export interface CompareRoundInput {
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    plan: Pick<FailbackPlan, 'seed' | 'geometry' | 'vm'>;
    disk: RoundToStart;
}

export interface CompareRoundResult {
    /** The next round of this disk, or undefined when its comparison is over. */
    next?: RoundToStart;
    differingLeaves: number;
    /** Round 1: the Azure disk's root digest (hex). */
    rootDigest?: string;
    azureBytesRead: number;
    manifestBytes: number;
}

async function downloadSmall(deps: FailbackDeps, blobName: string, what: string): Promise<Buffer> {
    const blob = deps.state.conn.blob.getContainerClient(FAILBACK_CONTAINER).getBlobClient(blobName);
    try {
        const props = await blob.getProperties({ abortSignal: deadline() });
        const size = props.contentLength ?? 0;
        if (size > MAX_MANIFEST_BYTES) {
            throw new HvrError(
                'RESYNC_MANIFEST_INVALID',
                `${what} has ${size} bytes, more than ${MAX_MANIFEST_BYTES}.`,
            );
        }
        const out = Buffer.alloc(size);
        if (size > 0)
            await blob.downloadToBuffer(out, 0, size, {
                abortSignal: deadline(BLOB_TIMEOUT_MS),
                conditions: { ifMatch: props.etag },
            });
        return out;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) {
            throw new HvrError('NOT_FOUND', `${what} is missing (blob ${FAILBACK_CONTAINER}/${blobName}).`);
        }
        throw err;
    }
}

/**
 * Compares one round of one disk: the provider's manifest against the same nodes of the Azure disk. The leaves
 * found to differ are kept in `{round}.differing` (JSON), so the log writer can gather every round's; a retry
 * rewrites the same blob.
 */
export async function compareRound(deps: FailbackDeps, input: CompareRoundInput): Promise<CompareRoundResult> {
    const { vmId, failbackId, phase, disk } = input;
    const g = geometryOf(input.plan, disk.sizeBytes);
    const digester = await Digester.create(seedFromHex(input.plan.seed), g);
    const ranges =
        disk.round === 1 ? roundOneRanges(g) : decodeDigestRequest(Buffer.from(disk.request ?? '', 'base64'), g).ranges;
    const manifest = await downloadSmall(
        deps,
        failbackManifestBlobName(vmId, failbackId, phase, disk.diskId, disk.round),
        `The round ${disk.round} manifest of disk ${disk.diskId}`,
    );
    const azure = await deps.control.openDisk(input.plan.vm, disk.diskId, phase);
    if (azure.source.size !== disk.sizeBytes) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Disk ${disk.diskId} of the VM in Azure has ${azure.source.size} bytes of data; on premises it has ${disk.sizeBytes}.`,
        );
    }
    const result = await compareFailbackRound(
        azure.source,
        digester,
        { level: disk.level, round: disk.round, ranges },
        manifest,
    );
    const differing = deps.state.conn.blob
        .getContainerClient(FAILBACK_CONTAINER)
        .getBlockBlobClient(failbackDifferingBlobName(vmId, failbackId, phase, disk.diskId, disk.round));
    const body = JSON.stringify(result.differingLeaves);
    await differing.upload(body, Buffer.byteLength(body), { abortSignal: deadline() });
    const out: CompareRoundResult = {
        differingLeaves: result.differingLeaves.reduce((n, r) => n + r.count, 0),
        azureBytesRead: result.bytesRead,
        manifestBytes: manifest.length,
        ...(result.rootDigest ? { rootDigest: result.rootDigest } : {}),
    };
    if (result.next) {
        out.next = {
            diskId: disk.diskId,
            sizeBytes: disk.sizeBytes,
            round: disk.round + 1,
            level: result.next.level,
            request: encodeDigestRequest(result.next).toString('base64'),
        };
    }
    return out;
}

export interface WriteLogInput {
    vmId: string;
    failbackId: string;
    phase: FailbackPhase;
    plan: Pick<FailbackPlan, 'geometry' | 'vm' | 'seed'>;
    diskId: string;
    sizeBytes: number;
    /** Rounds compared (their `.differing` blobs are gathered); 0 with `full`. */
    rounds: number;
    /** Full download: every written block of the Azure disk, no comparison. */
    full: boolean;
}

export interface WrittenLog {
    diskId: string;
    logId: string;
    /** Bytes of the log blob: what the provider downloads. */
    bytes: number;
    /** Disk bytes it carries. */
    dataBytes: number;
    /** Full download: the Azure disk's root digest (a comparison's round 1 gives it otherwise). */
    rootDigest?: string;
}

/**
 * Writes the disk's difference as one MS-HRL log (read from the Azure disk, bounded memory through a temporary
 * file) to `{vmId}/{failbackId}/{phase}/{diskId}.hrl`. A log already written for this failback and phase is
 * returned as it is (its metadata names it), so a retried activity does not write a second one.
 */
export async function writeFailbackLog(deps: FailbackDeps, input: WriteLogInput): Promise<WrittenLog> {
    const blob = deps.state.conn.blob
        .getContainerClient(FAILBACK_CONTAINER)
        .getBlockBlobClient(failbackLogBlobName(input.vmId, input.failbackId, input.phase, input.diskId));
    const existing = await blob.getProperties({ abortSignal: deadline() }).catch((err: unknown) => {
        if (err instanceof RestError && err.statusCode === 404) return undefined;
        throw err;
    });
    const g = geometryOf(input.plan, input.sizeBytes);
    const azure = await deps.control.openDisk(input.plan.vm, input.diskId, input.phase);
    const rootDigest = input.full
        ? await rootDigestOfDisk(azure.source, await Digester.create(seedFromHex(input.plan.seed), g))
        : undefined;
    const withRoot = rootDigest ? { rootDigest } : {};
    if (existing?.metadata?.logid && existing.metadata.databytes !== undefined) {
        return {
            diskId: input.diskId,
            logId: existing.metadata.logid,
            bytes: existing.contentLength ?? 0,
            dataBytes: Number(existing.metadata.databytes),
            ...withRoot,
        };
    }
    let ranges: ByteRange[];
    if (input.full) {
        ranges = splitRuns(await writtenRanges(azure.blob, input.sizeBytes), 1024 * 1024);
    } else {
        const leaves: NodeRange[] = [];
        for (let round = 1; round <= input.rounds; round++) {
            const bytes = await downloadSmall(
                deps,
                failbackDifferingBlobName(input.vmId, input.failbackId, input.phase, input.diskId, round),
                `The differing blocks of round ${round} of disk ${input.diskId}`,
            );
            leaves.push(...(JSON.parse(bytes.toString('utf8')) as NodeRange[]));
        }
        ranges = leafRangesToBytes(g, leaves);
    }
    const logId = randomUUID();
    const path = join(tmpdir(), `hvr-failback-${logId}.hrl`);
    try {
        const writer = await HrlFileWriter.create(path, { uniqueId: logId, createdAt: new Date() });
        let dataBytes = 0;
        for (const r of ranges) {
            await writer.add(r.offset, await azure.source.read(r.offset, r.length));
            dataBytes += r.length;
        }
        await writer.close();
        await blob.uploadFile(path, {
            abortSignal: deadline(BLOB_TIMEOUT_MS),
            metadata: { logid: logId, databytes: String(dataBytes), phase: input.phase },
            blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
        });
        const props = await blob.getProperties({ abortSignal: deadline() });
        return { diskId: input.diskId, logId, bytes: props.contentLength ?? 0, dataBytes, ...withRoot };
    } finally {
        await rm(path, { force: true });
    }
}

function splitRuns(ranges: readonly ByteRange[], max: number): ByteRange[] {
    const out: ByteRange[] = [];
    for (const r of ranges) {
        for (let o = r.offset; o < r.offset + r.length; o += max)
            out.push({ offset: o, length: Math.min(max, r.offset + r.length - o) });
    }
    return out;
}

/**
 * The first read a provider is ever granted: one read-only link per difference log, for exactly that blob,
 * short-lived (FAILBACK_GRANT_MINUTES). Sends FailbackLogReady; the message id names the phase, so a retry is a
 * duplicate.
 */
export async function sendFailbackLogReady(
    deps: FailbackDeps,
    input: {
        vmId: string;
        siteId: string;
        failbackId: string;
        phase: FailbackPhase;
        plan: Pick<FailbackPlan, 'seed' | 'geometry'>;
        logs: WrittenLog[];
    },
): Promise<null> {
    const disks = [];
    for (const log of input.logs) {
        const link = await readOnlyUrl(
            deps.state.conn,
            FAILBACK_CONTAINER,
            failbackLogBlobName(input.vmId, input.failbackId, input.phase, log.diskId),
            deps.grantMinutes,
        );
        disks.push({
            diskId: log.diskId,
            logId: log.logId,
            bytes: log.bytes,
            logUrl: link.url,
            logExpiresOn: link.expiresOn,
        });
    }
    await deps.publish({
        type: 'FailbackLogReady',
        siteId: input.siteId,
        vmId: input.vmId,
        messageId: `FailbackLogReady:${input.failbackId}:${input.phase}`,
        payload: {
            ...digestHeader(input),
            disks,
        },
    });
    return null;
}

/** The VM in Azure's power: read it, deallocate it, start it again. */
export async function azureVmPower(
    deps: FailbackDeps,
    input: { vm: AzureVmRef; action: 'read' | 'deallocate' | 'start' },
): Promise<AzureVmPowerState> {
    if (input.action === 'deallocate') await deps.control.deallocate(input.vm);
    if (input.action === 'start') await deps.control.start(input.vm);
    const state = await deps.control.powerState(input.vm);
    if (state === 'missing') {
        throw new HvrError('VM_NOT_FOUND', `The virtual machine ${input.vm.vmName} in Azure is missing.`);
    }
    return state;
}

/** Ends a phase's reads and deletes the failback's blobs (manifests, differing leaves, logs) once it is over. */
export async function releaseFailbackPhase(
    deps: FailbackDeps,
    input: { vm: AzureVmRef; phase: FailbackPhase; deleteBlobs: boolean },
): Promise<number> {
    await deps.control.releaseDisks(input.vm, input.phase);
    if (!input.deleteBlobs) return 0;
    const container = deps.state.conn.blob.getContainerClient(FAILBACK_CONTAINER);
    let deleted = 0;
    for await (const item of container.listBlobsFlat({ prefix: failbackPrefix(input.vm.vmId, input.vm.failbackId) })) {
        await container.getBlobClient(item.name).deleteIfExists({ abortSignal: deadline() });
        deleted++;
    }
    return deleted;
}

/** A provider-bound event built in the orchestration (CompleteFailback, CancelFailback). */
export function failbackEvent(
    type: 'CompleteFailback' | 'CancelFailback',
    input: { vmId: string; siteId: string; failbackId: string; reason?: string },
): OutgoingProviderEvent {
    return {
        type,
        siteId: input.siteId,
        vmId: input.vmId,
        messageId: `${type}:${input.failbackId}`,
        payload: {
            vmId: input.vmId,
            failbackId: input.failbackId,
            ...(type === 'CancelFailback' ? { reason: (input.reason ?? 'Failback cancelled.').slice(0, 256) } : {}),
        },
    };
}
