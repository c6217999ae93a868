import { FAILBACK_TASKS } from '../../../orchestrations/failback';
import { REPROTECT_TASKS } from '../../../orchestrations/reprotect';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAILOVER_ACTIONS } from '../../../functions/apiFailover';
import { CHANGE_RECOVERY_POINT_TASKS } from '../../../orchestrations/changeRecoveryPoint';
import { PLANNED_FAILOVER_TASKS } from '../../../orchestrations/plannedFailover';
import { allowedOperations, PROTECTED_ITEM_OPERATIONS } from '../../../shared/failover/allowedOperations';
import { PROTECTION_STATES, ProtectionState } from '../../../shared/state/protectedItems';

const ROOT = join(__dirname, '..', '..', '..');
const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');
const failoverDoc = read('docs/failover.md');
const apiDoc = read('docs/api.md');

function section(doc: string, heading: string): string {
    const start = doc.indexOf(`\n## ${heading}\n`);
    if (start < 0) throw new Error(`no section "${heading}"`);
    const end = doc.indexOf('\n## ', start + 1);
    return doc.slice(start, end < 0 ? undefined : end);
}

const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

describe('docs/failover.md and docs/api.md say what the code does', () => {
    it.each(FAILOVER_ACTIONS)('the action %s is documented in both', (name) => {
        expect(apiDoc).toContain(`/api/replicationProtectedItems/{vmId}/${name}\``);
        expect(failoverDoc).toContain(`/${name}`);
    });

    it('the allowed operations table is the rule, row by row, and names every operation', () => {
        const rows = section(failoverDoc, 'Allowed operations')
            .split('\n')
            .filter((l) => l.startsWith('| ') && !l.startsWith('| state') && !l.startsWith('| ---'));
        expect(rows.length).toBeGreaterThanOrEqual(5);
        const named = new Set<string>();
        for (const row of rows) {
            const [, states = '', ops = ''] = row.split('|').map((c) => c.trim());
            const testFailoverState = states.includes('drill awaiting') ? 'TestFailoverCleanupPending' : 'None';
            const documented = ticked(ops);
            documented.forEach((o) => named.add(o));
            for (const state of ticked(states).filter((s): s is ProtectionState => s in PROTECTION_STATES)) {
                expect({
                    state,
                    testFailoverState,
                    ops: allowedOperations({ protectionState: state, testFailoverState }),
                }).toEqual({
                    state,
                    testFailoverState,
                    ops: documented,
                });
            }
        }
        expect([...named].sort()).toEqual([...PROTECTED_ITEM_OPERATIONS].sort());
    });

    it.each([...PLANNED_FAILOVER_TASKS, ...CHANGE_RECOVERY_POINT_TASKS])('the task "%s" is in a table', (task) => {
        expect(failoverDoc).toContain(`| ${task} |`);
    });

    it('the failover protection states are listed with the portal wording', () => {
        const failoverStates = Object.entries(PROTECTION_STATES).filter(
            ([key]) => key.includes('Failover') || key.includes('FailedOver') || key.includes('RecoveryPoint'),
        );
        expect(failoverStates.length).toBeGreaterThanOrEqual(7);
        const states = section(failoverDoc, "States (ASR's strings)");
        for (const [key, description] of failoverStates) expect(states).toContain(`\`${key}\` | ${description} |`);
    });

    it.each([...FAILBACK_TASKS.ForDownTime, ...FAILBACK_TASKS.ForSynchronization, ...REPROTECT_TASKS])(
        'the failback or re-protect task "%s" is named on the page',
        (task) => {
            expect(failoverDoc).toContain(task);
        },
    );

    it('the failback and re-protect states are listed with the portal wording', () => {
        const states = section(failoverDoc, "States (ASR's strings)");
        for (const key of ['FailbackInProgress', 'FailedBack', 'ReprotectInProgress'] as const) {
            expect(states).toContain(`\`${key}\` | ${PROTECTION_STATES[key]} |`);
        }
    });

    it('the failback settings are documented and in the sample settings', () => {
        const values = JSON.parse(read('local.settings.sample.json')).Values as Record<string, string>;
        for (const name of ['FAILBACK_GRANT_MINUTES', 'FAILBACK_PROVIDER_TIMEOUT_MINUTES']) {
            expect(section(failoverDoc, 'Settings')).toContain(`\`${name}\``);
            expect(values).toHaveProperty(name);
        }
    });

    it('the shutdown timeout setting is documented and in the sample settings', () => {
        expect(section(failoverDoc, 'Settings')).toContain('`PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS`');
        expect(JSON.parse(read('local.settings.sample.json')).Values).toHaveProperty(
            'PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS',
        );
    });
});
