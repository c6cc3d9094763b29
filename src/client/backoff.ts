// Exponential backoff with "equal jitter" (half fixed, half random), the same shape the
// queue uses for job retries: clients that lost the server together do not come back in
// lockstep, and none waits less than half its step.

export interface BackoffPolicy {
  /** First delay before jitter. */
  baseMs: number;
  /** Largest delay before jitter. */
  maxMs: number;
}

/** Delay before retry number `failures` (1 = the first retry). */
export function backoffDelayMs(failures: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return step / 2 + (random() * step) / 2;
}

export interface Backoff {
  /** Counts a failure and answers how long to wait; a server's Retry-After wins when longer. */
  next(retryAfterMs?: number): number;
  reset(): void;
  readonly failures: number;
}

export function createBackoff(policy: BackoffPolicy, random: () => number = Math.random): Backoff {
  let failures = 0;
  return {
    next(retryAfterMs) {
      failures++;
      const delay = backoffDelayMs(failures, policy, random);
      // Retry-After is honoured but bounded: a misbehaving proxy must not park us for hours.
      return retryAfterMs === undefined ? delay : Math.max(delay, Math.min(retryAfterMs, policy.maxMs * 2));
    },
    reset() {
      failures = 0;
    },
    get failures() {
      return failures;
    },
  };
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
