// Long-poll claims wait here for work. Whatever makes jobs claimable (enqueue, a retry's
// backoff ending, a redrive) calls `notifyReady`; within one tick those notices are folded
// into one `queue.ready` bus event per pool, naming how many jobs and which tag sets
// became claimable — never one message per job. Every replica hears it on `queue:<poolId>`
// and wakes at most that many of its own waiters whose tags satisfy a set, oldest first.
import type { Bus } from '../../platform/bus.js';

export const QUEUE_TOPIC_PREFIX = 'queue:';

interface ReadyNotice {
  pool_id: string;
  count: number;
  tag_sets: string[][];
}

interface Waiter {
  tags: ReadonlySet<string>;
  woken: boolean;
  wake(): void;
}

export interface WaitHandle {
  /**
   * Resolves 'woken' (maybe already), 'timeout' at the deadline, or 'closed' on shutdown
   * or when `signal` aborts (the client went away).
   */
  until(deadline: number, signal?: AbortSignal): Promise<'woken' | 'timeout' | 'closed'>;
  cancel(): void;
}

export interface Wakeups {
  notifyReady(jobs: readonly { pool_id: string; required_tags: readonly string[] }[]): void;
  register(poolId: string, tags: readonly string[]): WaitHandle;
  /** Waiters currently parked (metrics, tests). */
  waiting(): number;
  close(): void;
}

export function createWakeups(bus: Bus, opts: { degradedPollMs?: number } = {}): Wakeups {
  const waiters = new Map<string, Set<Waiter>>();
  let pending = new Map<string, { count: number; sets: Map<string, string[]> }>();
  let flushScheduled = false;
  let closed = false;
  const closers = new Set<() => void>();

  const flush = () => {
    flushScheduled = false;
    const batch = pending;
    pending = new Map();
    for (const [poolId, { count, sets }] of batch) {
      const notice: ReadyNotice = { pool_id: poolId, count, tag_sets: [...sets.values()] };
      bus.publish(`${QUEUE_TOPIC_PREFIX}${poolId}`, 'queue.ready', notice);
    }
  };

  const wake = (notice: ReadyNotice) => {
    const set = waiters.get(notice.pool_id);
    if (!set) return;
    let budget = notice.count;
    for (const waiter of set) {
      if (budget <= 0) break;
      if (waiter.woken) continue;
      if (notice.tag_sets.some((required) => required.every((t) => waiter.tags.has(t)))) {
        waiter.wake();
        budget--;
      }
    }
  };

  const unsubscribe = bus.subscribe(`${QUEUE_TOPIC_PREFIX}*`, (event) => {
    if (event.type === 'queue.ready') wake(event.data as ReadyNotice);
  });

  return {
    notifyReady(jobs) {
      for (const job of jobs) {
        let entry = pending.get(job.pool_id);
        if (!entry) pending.set(job.pool_id, (entry = { count: 0, sets: new Map() }));
        entry.count++;
        const key = job.required_tags.join('\n');
        if (!entry.sets.has(key)) entry.sets.set(key, [...job.required_tags]);
      }
      if (!flushScheduled && pending.size > 0) {
        flushScheduled = true;
        setImmediate(flush);
      }
    },

    register(poolId, tags) {
      let resolveWait: ((outcome: 'woken' | 'timeout' | 'closed') => void) | null = null;
      const waiter: Waiter = {
        tags: new Set(tags),
        woken: false,
        wake() {
          waiter.woken = true;
          resolveWait?.('woken');
        },
      };
      let set = waiters.get(poolId);
      if (!set) waiters.set(poolId, (set = new Set()));
      set.add(waiter);
      const remove = () => {
        set.delete(waiter);
        if (set.size === 0 && waiters.get(poolId) === set) waiters.delete(poolId);
      };
      return {
        until(deadline, signal) {
          if (closed || signal?.aborted) return Promise.resolve('closed' as const);
          if (waiter.woken) return Promise.resolve('woken' as const);
          return new Promise((resolve) => {
            let poll: NodeJS.Timeout | undefined;
            const finish = (outcome: 'woken' | 'timeout' | 'closed') => {
              clearTimeout(timer);
              clearInterval(poll);
              closers.delete(onClose);
              signal?.removeEventListener('abort', onClose);
              resolveWait = null;
              resolve(outcome);
            };
            const onClose = () => finish('closed');
            closers.add(onClose);
            signal?.addEventListener('abort', onClose, { once: true });
            resolveWait = finish;
            const timer = setTimeout(() => finish('timeout'), Math.max(0, deadline - Date.now()));
            // Without cross-replica delivery (Redis away) a job enqueued on another replica
            // would not wake us; poll instead until the bus recovers.
            if (opts.degradedPollMs && !bus.status().ok) poll = setInterval(() => finish('woken'), opts.degradedPollMs);
          });
        },
        cancel: remove,
      };
    },

    waiting: () => [...waiters.values()].reduce((n, s) => n + s.size, 0),

    close() {
      closed = true;
      unsubscribe();
      for (const close of [...closers]) close();
    },
  };
}
