import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/**
 * The browser the console tests drive: Debian's chromium (CI installs it with apt-get), through playwright-core.
 * Where it is missing the tests are skipped with the reason printed, unless HVR_TEST_BROWSER_REQUIRED=1 (CI),
 * which makes that a failure.
 */
export const BROWSER_REQUIRED_SETTING = 'HVR_TEST_BROWSER_REQUIRED';
export const CHROMIUM_PATH = process.env.HVR_CHROMIUM ?? '/usr/bin/chromium';
/** The launch flags for a headless run in a container (no sandbox as root, no GPU, nothing fetched at start). */
export const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
];

/** Why the browser tests cannot run here, or undefined when they can (throws when they are required). */
export function browserSkipReason(env: NodeJS.ProcessEnv = process.env): string | undefined {
    if (existsSync(CHROMIUM_PATH)) return undefined;
    const reason = `${CHROMIUM_PATH} is missing (Debian: apt-get install -y chromium)`;
    if (env[BROWSER_REQUIRED_SETTING] === '1') {
        throw new Error(`${BROWSER_REQUIRED_SETTING}=1 but the console tests cannot run: ${reason}`);
    }
    return reason;
}

export async function launchChromium(): Promise<Browser> {
    const { chromium } = await import('playwright-core');
    return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
}
