// Background loops that must run on one replica at a time (ledger sequencer, reaper,
// scheduler). Each loop competes for a PostgreSQL advisory lock; the winner holds it on a
// dedicated connection for as long as it lives, so a crashed leader's lock is released by
// the database and another replica takes over at its next attempt.
import type { Db, Queryable } from './db/index.js';

export interface LeaderLoop {
  /** Runs the next tick now instead of waiting for the interval (if this replica leads). */
  kick(): void;
  stop(): Promise<void>;
  isLeader(): boolean;
}

export interface LeaderLoopOptions {
  name: string;
  lockKey: bigint;
  intervalMs: number;
  tick: (session: Queryable) => Promise<void>;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

export function startLeaderLoop(db: Db, opts: LeaderLoopOptions): LeaderLoop {
  let stopped = false;
  let leader = false;
  let wake: (() => void) | null = null;
  let kicked = false;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      if (kicked || stopped) {
        kicked = false;
        return resolve();
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        kicked = false;
        resolve();
      }
      wake = done;
    });

  const lead = async (session: Queryable) => {
    leader = true;
    opts.log?.info({ loop: opts.name }, 'leading background loop');
    try {
      while (!stopped) {
        await opts.tick(session);
        await pause(opts.intervalMs);
      }
    } finally {
      leader = false;
    }
  };

  const running = (async () => {
    while (!stopped) {
      try {
        await db.withAdvisoryLock(opts.lockKey, lead, { wait: false });
      } catch (error) {
        if (!stopped) opts.log?.warn({ err: error, loop: opts.name }, 'background loop failed; retrying');
      }
      if (!stopped) await pause(opts.intervalMs);
    }
  })();

  return {
    kick() {
      kicked = true;
      wake?.();
    },
    async stop() {
      stopped = true;
      wake?.();
      await running;
    },
    isLeader: () => leader,
  };
}
