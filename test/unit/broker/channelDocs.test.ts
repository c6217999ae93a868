import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REJECTED_COMMANDS_QUEUE, siteSubscriptionName } from '../../../shared/bus/entities';
import { PROVIDER_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC } from '../../../shared/contracts/messages';
import { serviceBusHostSettings } from '../../../packages/functions-local/src';

const root = join(__dirname, '../../..');
const read = (file: string) => readFileSync(join(root, file), 'utf8');

/** The refusal codes the command handler can give: the provider-channel codes of ErrorCode. */
function channelCodes(): string[] {
    const errors = read('shared/errors.ts');
    const union = errors.slice(errors.indexOf('// provider channel'), errors.indexOf("| 'INTERNAL'"));
    return [...union.matchAll(/'(MESSAGE_[A-Z_]+)'/g)].map((m) => m[1]!);
}

describe('the channel docs say what the code does', () => {
    it('docs/provider-contract.md lists every refusal code in its dead-letter table, once', () => {
        const contract = read('docs/provider-contract.md');
        const table = contract.slice(
            contract.indexOf('## Dead letters'),
            contract.indexOf('**Where the dead letters are.**'),
        );
        const listed = [...table.matchAll(/^\| `(MESSAGE_[A-Z_]+)` \|/gm)].map((m) => m[1]!);
        expect([...listed].sort()).toEqual([...channelCodes()].sort());
    });

    it("docs/local-host.md names the broker's entities and the host.json settings it reads", () => {
        const doc = read('docs/local-host.md');
        for (const name of [PROVIDER_COMMANDS_QUEUE, REJECTED_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC]) {
            expect(doc).toContain(`| queue \`${name}\``.replace('queue `provider-events`', 'topic `provider-events`'));
        }
        expect(doc).toContain(`provider-events/Subscriptions/${siteSubscriptionName('{siteId}')}`);
        const settings = Object.keys(serviceBusHostSettings(join(root, 'test/unit/broker'))).filter(
            (k) => k !== 'ignored',
        );
        for (const setting of settings) {
            expect(doc).toContain(`| \`${setting.replace(/Ms$/, '')}\` |`);
        }
    });

    it('docs/provider-contract.md names the site subscription as infra does', () => {
        expect(read('docs/provider-contract.md')).toContain(
            `${PROVIDER_EVENTS_TOPIC}/Subscriptions/${siteSubscriptionName('{siteId}')}`,
        );
    });
});
