/**
 * Counts the invocations the host has started and not finished, so that stopping can wait for them
 * (with a bound) instead of cutting a merge or a command off half-way.
 */
export class InFlightInvocations {
    private readonly running = new Set<Promise<unknown>>();
    private closed = false;

    /** Whether new invocations are still accepted (false once draining has begun). */
    get accepting(): boolean {
        return !this.closed;
    }

    get count(): number {
        return this.running.size;
    }

    /** Runs `work` as one tracked invocation. Throws if the host is stopping. */
    track<T>(work: () => Promise<T>): Promise<T> {
        if (this.closed) return Promise.reject(new Error('The host is stopping and accepts no new invocations.'));
        const promise = work();
        this.running.add(promise);
        const forget = (): void => {
            this.running.delete(promise);
        };
        promise.then(forget, forget);
        return promise;
    }

    /** Stops accepting and waits up to `timeoutMs` for what runs; resolves with how many were still running. */
    async drain(timeoutMs: number): Promise<number> {
        this.closed = true;
        if (this.running.size === 0) return 0;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
            timer = setTimeout(() => resolve('timeout'), timeoutMs);
        });
        const settled = Promise.allSettled([...this.running]).then(() => 'done' as const);
        await Promise.race([settled, timedOut]);
        clearTimeout(timer);
        return this.running.size;
    }
}
