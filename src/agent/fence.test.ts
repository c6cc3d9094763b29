import { describe, expect, it } from 'vitest';
import { createLeaseFence, fenceWindowMs } from './fence.js';

describe('self-fencing', () => {
  it('allows the shorter of lease and lost-after, minus a margin of 20 % (at least 1 s)', () => {
    expect(fenceWindowMs({ leaseSeconds: 30, heartbeatSeconds: 10 })).toBe(24_000); // min(30, 3×10) − 6
    expect(fenceWindowMs({ leaseSeconds: 30, heartbeatSeconds: 5 })).toBe(12_000); // min(30, 15) − 3
    expect(fenceWindowMs({ leaseSeconds: 5, heartbeatSeconds: 1 })).toBe(2_000); // min(5, 3) − 1
    expect(fenceWindowMs({ leaseSeconds: 60, heartbeatSeconds: 10, lostAfterSeconds: 50 })).toBe(40_000);
  });

  it('counts from the start of the last renewing request, on an injected clock', () => {
    const fence = createLeaseFence({ leaseSeconds: 30, heartbeatSeconds: 10 }); // window 24 s
    fence.renewed(['a', 'b'], 1_000);
    expect(fence.overdue(24_999)).toEqual([]);
    fence.renewed(['a'], 20_000);
    expect(fence.overdue(25_000)).toEqual(['b']);
    expect(fence.deadline('a')).toBe(44_000);
    expect(fence.silentForMs('a', 30_000)).toBe(10_000);
    expect(fence.overdue(44_000).sort()).toEqual(['a', 'b']);
  });

  it('never moves a renewal backwards when an older request answers late', () => {
    const fence = createLeaseFence({ leaseSeconds: 30, heartbeatSeconds: 10 });
    fence.renewed(['a'], 10_000);
    fence.renewed(['a'], 5_000);
    expect(fence.deadline('a')).toBe(34_000);
  });

  it('forgets released jobs and follows new timings from the server', () => {
    const fence = createLeaseFence({ leaseSeconds: 30, heartbeatSeconds: 10 });
    fence.renewed(['a', 'b'], 0);
    fence.forget('b');
    fence.setTimings({ leaseSeconds: 5, heartbeatSeconds: 1 });
    expect(fence.overdue(2_000)).toEqual(['a']);
    expect(fence.deadline('b')).toBeUndefined();
  });
});
