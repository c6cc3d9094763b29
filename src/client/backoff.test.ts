import { describe, expect, it } from 'vitest';
import { backoffDelayMs, createBackoff, sleep } from './backoff.js';

const policy = { baseMs: 100, maxMs: 1_000 };

describe('backoff', () => {
  it('doubles from the base up to the cap, with half of each step random', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, policy, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, policy, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('counts failures, resets, and lets a longer Retry-After win within bounds', () => {
    const backoff = createBackoff(policy, () => 0);
    expect(backoff.next()).toBe(50);
    expect(backoff.next(700)).toBe(700);
    expect(backoff.next(3_600_000)).toBe(2_000); // a hostile Retry-After is capped at twice the cap
    expect(backoff.failures).toBe(3);
    backoff.reset();
    expect(backoff.next()).toBe(50);
  });

  it('sleep ends early when aborted', async () => {
    const abort = new AbortController();
    const started = Date.now();
    const slept = sleep(10_000, abort.signal);
    abort.abort();
    await slept;
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
