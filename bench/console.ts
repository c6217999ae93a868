import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { consoleUrl } from '../shared/consoleRoute';
import { connectionFromString } from '../shared/storage/connections';
import { createProtectedItem, PROTECTION_STATES, ProtectedItem } from '../shared/state/protectedItems';
import { startLocalHost } from '../tools/platform';

/**
 * `npm run bench -- console`: the operator console's first view on the local host with ITEMS replicated items,
 * in Debian's chromium (playwright-core): from navigation start (performance.now() = 0) to the moment the items
 * table has its last row, measured in the page by a MutationObserver. Each run is a fresh browser context (no
 * cache). Target: under 1 s. Also reports the bundle's size.
 */

const ITEMS = 200;
const RUNS = 7;
const TARGET_MS = 1000;
const CHROMIUM = process.env.HVR_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
];

function log(message: string): void {
    process.stderr.write(`console bench: ${message}\n`);
}

function item(i: number, at: string): ProtectedItem {
    const health = i % 17 === 0 ? 'Critical' : i % 5 === 0 ? 'Warning' : 'Normal';
    const captured = new Date(Date.parse(at) - (30 + (i % 40) * 15) * 1000).toISOString();
    return {
        vmId: `vm-${String(i).padStart(3, '0')}`,
        siteId: `site-${i % 4}`,
        vmName: `app${String(i).padStart(3, '0')}`,
        generation: 2,
        policyName: 'gold',
        disks: [
            { diskId: 'os', sizeBytes: 128 * 2 ** 30, logicalSectorBytes: 512, isOsDisk: true },
            { diskId: 'data', sizeBytes: 512 * 2 ** 30, logicalSectorBytes: 512, isOsDisk: false },
        ],
        protectionState: 'Protected',
        protectionStateDescription: PROTECTION_STATES.Protected,
        resynchronizationState: 'None',
        replicationHealth: health,
        healthReasons:
            health === 'Normal'
                ? []
                : [
                      {
                          code: health === 'Critical' ? 'RpoCriticalThresholdExceeded' : 'RpoWarningThresholdExceeded',
                          severity: health,
                          message: `RPO is over the ${health.toLowerCase()} threshold.`,
                      },
                  ],
        lastCapturedAt: captured,
        lastRecoveryPointId: `vm-${i}:c-1`,
        lastRecoveryPointAt: captured,
        createdAt: at,
        updatedAt: at,
    };
}

function bundleSize(root: string): { files: Record<string, number>; bytes: number; gzipBytes: number } {
    const dir = join(root, 'dist', 'console');
    const files: Record<string, number> = {};
    let gzipBytes = 0;
    for (const name of readdirSync(dir)) {
        files[name] = statSync(join(dir, name)).size;
        gzipBytes += gzipSync(readFileSync(join(dir, name))).byteLength;
    }
    return { files, bytes: Object.values(files).reduce((a, b) => a + b, 0), gzipBytes };
}

export async function bench(): Promise<Record<string, unknown>> {
    const root = resolve(__dirname, '..', '..');
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (Debian: apt-get install -y chromium)`);
    if (!existsSync(join(root, 'dist', 'console', 'index.html'))) throw new Error('dist/console is not built');
    const host = await startLocalHost({ appRoot: root, port: 0, log: () => undefined });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    try {
        const scope = {
            conn: connectionFromString(host.storageConnectionString),
            tablePrefix: host.settings.STATE_TABLE_PREFIX ?? '',
        };
        const at = new Date().toISOString();
        for (let i = 0; i < ITEMS; i += 20) {
            await Promise.all(
                Array.from({ length: Math.min(20, ITEMS - i) }, (_, k) => createProtectedItem(scope, item(i + k, at))),
            );
        }
        log(`${ITEMS} protected items written; ${RUNS} cold first views`);
        const url = consoleUrl(host.apiUrl, host.functionKey);
        const times: number[] = [];
        const apiMs: number[] = [];
        const phases: { scriptLoadedMs: number; itemsSentMs: number; itemsAnsweredMs: number }[] = [];
        for (let run = 0; run < RUNS; run++) {
            const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
            const page = await context.newPage();
            // In the page, from before its first script: note when the table's last row exists.
            await page.addInitScript({
                content: `new MutationObserver((_m, observer) => {
                    if (document.querySelector('#items-table tbody tr:nth-child(${ITEMS})')) {
                        window.lastRowAt = performance.now();
                        observer.disconnect();
                    }
                }).observe(document, { childList: true, subtree: true });`,
            });
            await page.goto(url);
            // A function, not a string: the console's CSP allows no eval in the page.
            await page.waitForFunction(
                () => (globalThis as unknown as { lastRowAt?: number }).lastRowAt !== undefined,
                undefined,
                { timeout: 30_000 },
            );
            const ms = await page.evaluate<number>('window.lastRowAt');
            // Where the time went: the script loaded, the items request sent and answered (from navigation start).
            const phase = await page.evaluate<{ script: number; itemsStart: number; itemsEnd: number }>(`(() => {
                const entries = performance.getEntriesByType('resource');
                const script = entries.find((r) => /\\/app-[^/]*\\.js$/.test(r.name));
                const items = entries.find((r) => r.name.includes('/api/replicationProtectedItems'));
                return { script: script ? script.responseEnd : -1, itemsStart: items ? items.startTime : -1,
                    itemsEnd: items ? items.responseEnd : -1 };
            })()`);
            const api = phase.itemsEnd - phase.itemsStart;
            times.push(Math.round(ms));
            apiMs.push(Math.round(api));
            phases.push({
                scriptLoadedMs: Math.round(phase.script),
                itemsSentMs: Math.round(phase.itemsStart),
                itemsAnsweredMs: Math.round(phase.itemsEnd),
            });
            log(
                `run ${run + 1}: last row at ${ms.toFixed(0)} ms (items request ${api.toFixed(0)} ms: sent at ` +
                    `${phase.itemsStart.toFixed(0)}, answered at ${phase.itemsEnd.toFixed(0)}; script at ${phase.script.toFixed(0)})`,
            );
            await context.close();
        }
        const sorted = [...times].sort((a, b) => a - b);
        const median = sorted[Math.floor(sorted.length / 2)]!;
        return {
            bench: 'console',
            items: ITEMS,
            runs: RUNS,
            firstViewMs: { median, min: sorted[0], max: sorted[sorted.length - 1], all: times },
            itemsRequestMs: apiMs,
            itemsRequestMedianMs: [...apiMs].sort((a, b) => a - b)[Math.floor(apiMs.length / 2)],
            phases,
            targetMs: TARGET_MS,
            underTarget: median < TARGET_MS,
            bundle: bundleSize(root),
            loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
        };
    } finally {
        await browser.close();
        await host.stop();
    }
}
