// Self-fencing: an agent that cannot renew a job's lease stops the job before the server
// can hand it to another agent, so one job never runs on two agents at once — even when
// this agent is cut off from the server and cannot be told.
//
// The rule. A lease renewed by a request that started at time T (this process's monotonic
// clock) lasts at least until T + lease on the server: the server renews when the request
// arrives, which is after T. The server can also end a silent agent's jobs sooner, once the
// agent is "lost" (silent for heartbeat × missed beats). So the job may be given away no
// sooner than T + min(lease, lost_after); the agent kills it at that point minus a safety
// margin (20 % of the window, at least 1 s), measured from the start of the last request
// that renewed it (the `start` call, then every successful heartbeat that listed it).

/** The server's default CAIRN_AGENT_LOST_AFTER_MISSED, assumed when it does not say. */
export const DEFAULT_MISSED_HEARTBEATS = 3;

export interface FenceTimings {
  leaseSeconds: number;
  heartbeatSeconds: number;
  /** As the server states it; otherwise heartbeat × DEFAULT_MISSED_HEARTBEATS. */
  lostAfterSeconds?: number;
}

/** How long after a renewal's start the agent may keep running the job. */
export function fenceWindowMs(t: FenceTimings): number {
  const lostAfter = t.lostAfterSeconds ?? t.heartbeatSeconds * DEFAULT_MISSED_HEARTBEATS;
  const window = Math.min(t.leaseSeconds, lostAfter) * 1000;
  const margin = Math.max(1000, window * 0.2);
  return Math.max(0, window - margin);
}

export interface LeaseFence {
  /** A request that started at `startedAtMs` renewed these jobs' leases. */
  renewed(jobIds: Iterable<string>, startedAtMs: number): void;
  forget(jobId: string): void;
  setTimings(t: FenceTimings): void;
  /** Jobs whose lease may already have been given away by `nowMs`. */
  overdue(nowMs: number): string[];
  /** Milliseconds since the job's last renewal began. */
  silentForMs(jobId: string, nowMs: number): number;
  deadline(jobId: string): number | undefined;
}

export function createLeaseFence(timings: FenceTimings): LeaseFence {
  const renewedAt = new Map<string, number>();
  let windowMs = fenceWindowMs(timings);
  return {
    renewed(jobIds, startedAtMs) {
      for (const id of jobIds) {
        // A slow answer to an older request must not move the renewal backwards.
        renewedAt.set(id, Math.max(renewedAt.get(id) ?? -Infinity, startedAtMs));
      }
    },
    forget(jobId) {
      renewedAt.delete(jobId);
    },
    setTimings(t) {
      windowMs = fenceWindowMs(t);
    },
    overdue(nowMs) {
      return [...renewedAt].filter(([, at]) => nowMs >= at + windowMs).map(([id]) => id);
    },
    silentForMs(jobId, nowMs) {
      const at = renewedAt.get(jobId);
      return at === undefined ? 0 : nowMs - at;
    },
    deadline(jobId) {
      const at = renewedAt.get(jobId);
      return at === undefined ? undefined : at + windowMs;
    },
  };
}

/** The monotonic clock the agent measures leases with (immune to wall-clock jumps). */
export const monotonicNow = (): number => performance.now();
