import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, backoffSeconds, decideAfterFailure, tagsToArray, tagsToObject } from './queue.model.js';
import { BUCKET_BOUNDS_MS, BUCKETS, bucketOf, quantileMs } from './queue.stats.js';

const job = (attempt: number, max = 3, retry = DEFAULT_RETRY, before = 0) => ({
  attempt,
  attempts_before_redrive: before,
  max_attempts: max,
  retry,
});

describe('retry decisions', () => {
  it('retries infrastructure failures by default, not exit statuses', () => {
    expect(decideAfterFailure(job(1), { reason: 'agent_lost', exitStatus: null }).kind).toBe('retry');
    expect(decideAfterFailure(job(1), { reason: 'lease_expired', exitStatus: null }).kind).toBe('retry');
    expect(decideAfterFailure(job(1), { reason: 'exit_status', exitStatus: 1 })).toEqual({ kind: 'final', state: 'failed' });
    expect(decideAfterFailure(job(1), { reason: 'timeout', exitStatus: null })).toEqual({ kind: 'final', state: 'timed_out' });
    expect(decideAfterFailure(job(1), { reason: 'canceled', exitStatus: null })).toEqual({ kind: 'final', state: 'canceled' });
  });

  it('retries the exit statuses a job names, or any, until attempts run out', () => {
    const rules = { ...DEFAULT_RETRY, exit_statuses: [2, 3] };
    expect(decideAfterFailure(job(1, 3, rules), { reason: 'exit_status', exitStatus: 3 }).kind).toBe('retry');
    expect(decideAfterFailure(job(1, 3, rules), { reason: 'exit_status', exitStatus: 4 })).toEqual({
      kind: 'final',
      state: 'failed',
    });
    expect(decideAfterFailure(job(3, 3, rules), { reason: 'exit_status', exitStatus: 2 })).toEqual({
      kind: 'final',
      state: 'dead_lettered',
    });
    // A redrive grants a fresh budget: attempt 4 after a redrive at 3 is the first of three.
    expect(decideAfterFailure(job(4, 3, rules, 3), { reason: 'exit_status', exitStatus: 2 }).kind).toBe('retry');
    const any = { ...DEFAULT_RETRY, exit_statuses: 'any' as const };
    expect(decideAfterFailure(job(2, 3, any), { reason: 'exit_status', exitStatus: 77 }).kind).toBe('retry');
    // Even a canceled job with a generous rule set is never retried.
    expect(decideAfterFailure(job(1, 3, { ...any, reasons: ['timeout'] }), { reason: 'canceled', exitStatus: 143 }).kind).toBe(
      'final',
    );
  });

  it('backs off exponentially with equal jitter, capped', () => {
    const rules = { ...DEFAULT_RETRY, backoff_seconds: 2, max_backoff_seconds: 60 };
    expect([1, 2, 3, 4].map((a) => backoffSeconds(rules, a, () => 0))).toEqual([1, 2, 4, 8]);
    expect([1, 2, 3, 4].map((a) => backoffSeconds(rules, a, () => 1))).toEqual([2, 4, 8, 16]);
    expect(backoffSeconds(rules, 10, () => 1)).toBe(60);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
        const ceiling = Math.min(60, 2 * 2 ** (attempt - 1));
        const delay = backoffSeconds(rules, attempt, () => r);
        return delay >= ceiling / 2 && delay <= ceiling;
      }),
    );
  });
});

describe('tags', () => {
  it('round-trip between objects and sorted key=value arrays', () => {
    expect(tagsToArray({ os: 'linux', arch: 'x64' })).toEqual(['arch=x64', 'os=linux']);
    expect(tagsToObject(['arch=x64', 'os=linux', 'k=a=b'])).toEqual({ arch: 'x64', os: 'linux', k: 'a=b' });
  });
});

describe('histogram statistics', () => {
  it('buckets and quantiles', () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(5)).toBe(0);
    expect(bucketOf(6)).toBe(1);
    expect(bucketOf(10_000_000)).toBe(BUCKET_BOUNDS_MS.length);
    const buckets = new Array<number>(BUCKETS).fill(0);
    expect(quantileMs(buckets, 0.95)).toBeNull();
    buckets[bucketOf(40)] = 95; // 25 < x ≤ 50
    buckets[bucketOf(900)] = 5; // 500 < x ≤ 1000
    const p95 = quantileMs(buckets, 0.95)!;
    expect(p95).toBeGreaterThan(25);
    expect(p95).toBeLessThanOrEqual(50);
    expect(quantileMs(buckets, 0.99)!).toBeGreaterThan(500);
  });
});
