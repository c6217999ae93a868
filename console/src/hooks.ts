import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

/** How often views refresh while they are shown. */
export const REFRESH_MS = 5000;

export interface Polled<T> {
    data: T | undefined;
    error: ApiError | undefined;
    /** Fetch now (after an action), without waiting for the next tick. */
    reload: () => void;
    loadedAt: number | undefined;
}

/**
 * Loads `load()` now and every `everyMs` while the view is mounted. The previous data stays on screen while a
 * refresh runs (no flash, no layout shift); a failed refresh keeps it and shows the error beside it.
 */
export function usePoll<T>(load: () => Promise<T>, deps: unknown[], everyMs = REFRESH_MS): Polled<T> {
    const [data, setData] = useState<T | undefined>(undefined);
    const [error, setError] = useState<ApiError | undefined>(undefined);
    const [loadedAt, setLoadedAt] = useState<number | undefined>(undefined);
    const generation = useRef(0);
    const loadRef = useRef(load);
    loadRef.current = load;
    const run = useCallback(() => {
        const mine = ++generation.current;
        loadRef.current().then(
            (value) => {
                if (mine !== generation.current) return;
                setData(value);
                setError(undefined);
                setLoadedAt(Date.now());
            },
            (err: unknown) => {
                if (mine !== generation.current) return;
                setError(err instanceof ApiError ? err : new ApiError(0, 'CONSOLE', String(err)));
            },
        );
    }, []);
    useEffect(() => {
        setData(undefined);
        run();
        const timer = setInterval(() => {
            if (document.visibilityState === 'visible') run();
        }, everyMs);
        return () => {
            generation.current++;
            clearInterval(timer);
        };
    }, deps);
    return { data, error, reload: run, loadedAt };
}
