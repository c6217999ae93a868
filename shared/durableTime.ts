import { HvrError } from './errors';

/**
 * The one scale of the orchestrations' durations (timers, retry delays, give-up limits, timeouts): a duration of
 * the product times this factor. 1 (the default, and the only value for a deployment) leaves them as designed;
 * tests on the real Durable engine, which has no virtual clock, set e.g. 0.001 so a one-minute retry takes 60 ms.
 * Orchestrators read it on every replay, so it must not change while the app runs.
 */
export const DURABLE_TIME_SCALE_SETTING = 'HVR_DURABLE_TIME_SCALE';

/** The scale in force: HVR_DURABLE_TIME_SCALE, a number in (0, 1]; default 1. */
export function durableTimeScale(env: NodeJS.ProcessEnv = process.env): number {
    const raw = env[DURABLE_TIME_SCALE_SETTING];
    if (raw === undefined || raw.trim() === '') return 1;
    const scale = Number(raw);
    if (!Number.isFinite(scale) || scale <= 0 || scale > 1) {
        throw new HvrError(
            'CONFIG_MISSING',
            `${DURABLE_TIME_SCALE_SETTING} must be a number greater than 0 and at most 1; got "${raw}". ` +
                'Leave it unset outside tests.',
            { setting: DURABLE_TIME_SCALE_SETTING },
        );
    }
    return scale;
}

/** A product duration in milliseconds, scaled; never below 1 ms so a timer still lies in the future. */
export function scaledMs(ms: number): number {
    const scale = durableTimeScale();
    return scale === 1 ? ms : Math.max(1, Math.round(ms * scale));
}
