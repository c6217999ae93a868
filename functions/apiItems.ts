import { HvrError } from '../shared/errors';
import { operationNotAllowed } from '../shared/failover/allowedOperations';
import { ports } from '../shared/ports';
import {
    getProtectedItem,
    ProtectedItem,
    StateScope,
    stateScope,
    updateProtectedItem,
} from '../shared/state/protectedItems';

/**
 * The protected item every per-VM route starts from, and the claim that starts an operation on it. This file
 * registers no function.
 */

/** The VM's protected item; NOT_FOUND (404) when the VM is not protected. */
export async function requireProtectedItem(vmId: string, scope: StateScope = stateScope()): Promise<ProtectedItem> {
    const item = await getProtectedItem(scope, vmId);
    if (!item) throw new HvrError('NOT_FOUND', `VM ${vmId} is not protected.`);
    return item;
}

/**
 * Claims the item for a new operation under its ETag: the state check and the claim are one write, so two
 * requests at once cannot both start. Refused (409, with the allowed operations) when `allowed` says no.
 */
export async function claimProtectedItem(
    vmId: string,
    allowed: (item: ProtectedItem) => boolean,
    what: string,
    changes: Partial<ProtectedItem>,
): Promise<ProtectedItem> {
    const { changed, item } = await updateProtectedItem(
        stateScope(),
        vmId,
        (current) => (allowed(current) ? changes : undefined),
        ports().clock.now().toISOString(),
    );
    if (!changed) throw operationNotAllowed(item, what);
    return item;
}
