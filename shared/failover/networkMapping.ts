import { HvrError } from '../errors';

/**
 * Network mapping as ASR does it: a source network of a site (a Hyper-V site's virtual switch network, or a VMM
 * VM network) maps to an Azure VNet; a failed-over NIC joins the VNet's subnet with the same name as its source
 * network, or else the first subnet. Test failover uses the mapping's test VNet, or an isolated VNet made for the
 * drill (never the production one: a drill must not disturb anything).
 */
export interface NetworkMapping {
    siteId: string;
    /** The on-premises network name (VM network in VMM, or the switch/network name on a Hyper-V site). */
    sourceNetwork: string;
    /** ARM id of the recovery VNet. */
    recoveryVnetId: string;
    /** The VNet's subnet names, in the VNet's order (the first one is the fallback). */
    recoverySubnets: string[];
    /** Optional VNet for test failover, with its subnets. */
    testVnetId?: string;
    testSubnets?: string[];
    updatedAt: string;
}

const VNET_ID =
    /^\/subscriptions\/[0-9a-fA-F-]{36}\/resourceGroups\/[-\w._()]{1,90}\/providers\/Microsoft\.Network\/virtualNetworks\/[-\w._]{2,64}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

/** Where a NIC goes: a VNet id and the subnet name (the subnet's ARM id is `${vnetId}/subnets/${subnet}`). */
export interface SubnetChoice {
    vnetId: string;
    subnet: string;
}

/** The subnet named like the source network, else the first one. */
export function chooseSubnet(vnetId: string, subnets: readonly string[], sourceNetwork: string): SubnetChoice {
    const same = subnets.find((s) => s.toLowerCase() === sourceNetwork.toLowerCase());
    const subnet = same ?? subnets[0];
    if (subnet === undefined) {
        throw new HvrError('PREREQUISITE_FAILED', `VNet ${vnetId} has no subnet in its network mapping.`, { vnetId });
    }
    return { vnetId, subnet };
}

export function subnetId(choice: SubnetChoice): string {
    return `${choice.vnetId}/subnets/${choice.subnet}`;
}

function invalid(field: string, value: unknown, rule: string): HvrError {
    return new HvrError('VALIDATION_FAILED', `${field} ${rule}; got ${JSON.stringify(value) ?? 'nothing'}.`, {
        field,
        value,
    });
}

function subnetList(field: string, value: unknown): string[] {
    if (!Array.isArray(value) || value.length === 0 || value.length > 64) {
        throw invalid(field, value, 'must list 1 to 64 subnet names, the first being the fallback');
    }
    return value.map((s: unknown, i) => {
        if (typeof s !== 'string' || !NAME.test(s)) throw invalid(`${field}[${i}]`, s, 'must be a subnet name');
        return s;
    });
}

/** Validates a mapping from the API body; VALIDATION_FAILED naming the field. */
export function parseNetworkMapping(
    siteId: string,
    sourceNetwork: string,
    body: unknown,
    updatedAt: string,
): NetworkMapping {
    if (!NAME.test(sourceNetwork)) throw invalid('sourceNetwork', sourceNetwork, 'must be a network name');
    const root = typeof body === 'object' && body !== null && 'properties' in body ? body.properties : body;
    if (typeof root !== 'object' || root === null || Array.isArray(root))
        throw invalid('body', root, 'must be an object');
    const r = root as Record<string, unknown>;
    if (typeof r.recoveryVnetId !== 'string' || !VNET_ID.test(r.recoveryVnetId)) {
        throw invalid('recoveryVnetId', r.recoveryVnetId, 'must be the ARM id of a virtual network');
    }
    const mapping: NetworkMapping = {
        siteId,
        sourceNetwork,
        recoveryVnetId: r.recoveryVnetId,
        recoverySubnets: subnetList('recoverySubnets', r.recoverySubnets),
        updatedAt,
    };
    if (r.testVnetId !== undefined) {
        if (typeof r.testVnetId !== 'string' || !VNET_ID.test(r.testVnetId)) {
            throw invalid('testVnetId', r.testVnetId, 'must be the ARM id of a virtual network');
        }
        if (r.testVnetId === r.recoveryVnetId) {
            throw invalid('testVnetId', r.testVnetId, 'must not be the recovery VNet (a drill must stay isolated)');
        }
        mapping.testVnetId = r.testVnetId;
        mapping.testSubnets = subnetList('testSubnets', r.testSubnets);
    } else if (r.testSubnets !== undefined) {
        throw invalid('testSubnets', r.testSubnets, 'needs testVnetId');
    }
    return mapping;
}
