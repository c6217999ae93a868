import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXTENSION_OPTIONS, unknownHostSettings } from './hostSettings';
import { REPO_ROOT } from './infraModel';

type Json = Record<string, unknown>;

const hostJson = JSON.parse(readFileSync(join(REPO_ROOT, 'host.json'), 'utf8')) as Json;
const section = (id: string) => (hostJson.extensions as Record<string, Json>)[id] ?? {};
const providerCommandsSource = readFileSync(join(REPO_ROOT, 'functions', 'providerCommands.ts'), 'utf8');

/** `hh:mm:ss` (a .NET TimeSpan as host.json writes it) in seconds. */
function timeSpanSeconds(value: unknown): number {
    const match = typeof value === 'string' ? /^(\d{2}):(\d{2}):(\d{2})$/.exec(value) : null;
    if (!match) throw new Error(`${String(value)} is not a hh:mm:ss TimeSpan`);
    return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

function withChange(change: (copy: Json) => void): Json {
    const copy = structuredClone(hostJson);
    change(copy);
    return copy;
}

describe('host.json', () => {
    it('uses only settings the loaded host and extensions define', () => {
        expect(unknownHostSettings(hostJson)).toEqual([]);
    });

    it('has each key once (JSON.parse keeps the last of duplicates; the host may not)', () => {
        const text = readFileSync(join(REPO_ROOT, 'host.json'), 'utf8');
        const reformatted = JSON.stringify(JSON.parse(text));
        const keys = (json: string) => json.match(/"[^"]+"\s*:/g)?.length ?? 0;
        expect(keys(text)).toBe(keys(reformatted));
    });

    it('notices a 4.x Service Bus setting, a misspelt Durable setting and an extension without a list', () => {
        const mutated = withChange((h) => {
            const ext = h.extensions as Record<string, Json>;
            ext.serviceBus!.messageHandlerOptions = { autoComplete: false };
            (ext.durableTask!.storageProvider as Json).partitionCounts = 4;
            ext.eventHubs = { maxBatchSize: 10 };
        });
        expect(unknownHostSettings(mutated)).toEqual([
            expect.stringMatching(
                /^extensions\.durableTask\.storageProvider\.partitionCounts is not a setting of .*AzureStorageOptions\.cs\)$/,
            ),
            expect.stringMatching(/^extensions\.serviceBus\.messageHandlerOptions is not a setting of .*5\.x/),
            expect.stringMatching(/^extensions\.eventHubs has no option list/),
        ]);
    });

    it('names the source of every option list', () => {
        for (const options of Object.values(EXTENSION_OPTIONS)) {
            expect(options.source).toMatch(/^Azure\/[\w-]+ \S+\.cs$/);
            expect(options.component).toMatch(/\d/);
        }
    });

    describe('Service Bus (the provider-commands session trigger)', () => {
        const serviceBus = section('serviceBus');

        it('auto-completes: providerCommands settles by returning (complete) or throwing (abandon)', () => {
            // With autoCompleteMessages false the host would leave every message the handler returns from
            // unsettled, and the broker would redeliver it after the lock expires.
            expect(serviceBus.autoCompleteMessages).toBe(true);
            expect(providerCommandsSource).toMatch(/case 'complete':\s*return;/);
            expect(providerCommandsSource).toMatch(/case 'abandon':\s*throw /);
            // A binding-level override would win over host.json.
            expect(providerCommandsSource).not.toMatch(/autoCompleteMessages\s*:/);
        });

        it('handles one message at a time per session, so one VM’s commands stay in order', () => {
            expect(serviceBus.maxConcurrentCallsPerSession).toBe(1);
            expect(serviceBus.maxConcurrentSessions).toEqual(expect.any(Number));
            expect(serviceBus.prefetchCount).toBe(0);
        });

        it('renews locks for longer than the queue lock duration (PT1M)', () => {
            expect(timeSpanSeconds(serviceBus.maxAutoLockRenewalDuration)).toBeGreaterThan(60);
        });
    });

    describe('Queues (the replica-log-events trigger of the merge)', () => {
        const queues = section('queues');

        it('decodes base64, as Event Grid writes to a Storage queue', () => {
            expect(queues.messageEncoding).toBe('base64');
        });

        it('runs few merges per instance and retries a failed one before poisoning it', () => {
            // Each merge holds ~40 MiB of read groups plus its index: a 2 GB instance runs at most 3 at once
            // (the extension runs up to batchSize + newBatchThreshold messages per instance).
            expect(queues.batchSize).toBeGreaterThanOrEqual(1);
            expect(Number(queues.batchSize) + Number(queues.newBatchThreshold)).toBeLessThanOrEqual(3);
            // Transient storage faults during a long merge must not poison the event after a few tries.
            expect(queues.maxDequeueCount).toBeGreaterThanOrEqual(5);
            expect(timeSpanSeconds(queues.visibilityTimeout)).toBeGreaterThanOrEqual(30);
            expect(timeSpanSeconds(queues.maxPollingInterval)).toBeLessThanOrEqual(60);
        });
    });

    it('keeps the Durable task hub in an app setting and the Azure Storage provider on the host connection', () => {
        const durable = section('durableTask');
        expect(durable.hubName).toBe('%DURABLE_TASK_HUB%');
        expect(durable.storageProvider).toMatchObject({ type: 'AzureStorage', connectionName: 'AzureWebJobsStorage' });
    });

    it("is what docs/deploy.md's host.json table says, value by value", () => {
        const doc = readFileSync(join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
        const table = doc.slice(doc.indexOf('## host.json')).split('\n## ')[0]!;
        const cells = (line: string) =>
            line
                .split('|')
                .slice(1, -1)
                .map((c) => c.trim().replace(/`/g, ''));
        const checked: string[] = [];
        let current = '';
        for (const line of table.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))) {
            const [sectionCell, settingCell, valueCell] = cells(line);
            if (sectionCell === 'Section') continue;
            if (sectionCell) current = sectionCell;
            if (current === 'durableTask') continue; // names a group ("concurrency"), checked by the test above
            const names = settingCell!.split(/, | \/ /);
            const values = valueCell!.split(/, | \/ /);
            expect({ names, count: values.length }).toEqual({ names, count: names.length });
            names.forEach((name, i) => {
                expect(`${current}.${name} = ${values[i]}`).toBe(
                    `${current}.${name} = ${String(section(current)[name])}`,
                );
                checked.push(`${current}.${name}`);
            });
        }
        expect(checked).toEqual(expect.arrayContaining(['queues.batchSize', 'queues.newBatchThreshold']));
    });
});
