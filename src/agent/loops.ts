// The agent's four loops, each on the shared Runtime:
//   heartbeat — every heartbeat_interval_seconds: renews leases, learns cancels/abandons;
//   claims    — long-polls for as many jobs as there are free slots, while active;
//   reports   — delivers the outbox, retrying until the server answers;
//   fence     — stops jobs whose lease could not be renewed in time (fence.ts).
// All retry with exponential backoff and jitter while the server is away.
import os from 'node:os';
import { ApiError, isRetryable, retryAfterOf } from '../client/api-request.js';
import { createBackoff, sleep } from '../client/backoff.js';
import { seconds } from './console.js';
import { freeSlots, heldJobIds, launch, setTimings, settle, type Runtime } from './runtime.js';

const FENCE_CHECK_MS = 200;
const REPORTS_PER_CALL = 500;

const isTokenDead = (error: unknown) => error instanceof ApiError && (error.status === 401 || error.status === 404);
const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Tracks one outage so it is announced once and its end is announced too. */
function outageTracker(rt: Runtime, what: string) {
  let since: number | undefined;
  return {
    failed(error: unknown, retryInMs: number) {
      const first = since === undefined;
      since ??= rt.now();
      if (first || retryInMs >= 5_000) {
        rt.console.warn(`${what}: ${describe(error)}; reconnecting in ${seconds(retryInMs)}`, {
          event: 'server.unreachable',
          error: describe(error),
          retry_in_ms: Math.round(retryInMs),
        });
      }
    },
    succeeded() {
      if (since === undefined) return;
      rt.console.info(`${what}: reconnected after ${seconds(rt.now() - since)}`, { event: 'server.reconnected' });
      since = undefined;
    },
  };
}

export async function heartbeatLoop(rt: Runtime, onTokenDead: () => Promise<void>): Promise<void> {
  const backoff = createBackoff({ baseMs: 250, maxMs: 5_000 });
  const outage = outageTracker(rt, 'heartbeat');
  while (!rt.closed.signal.aborted) {
    const interval = rt.timings.heartbeatSeconds * 1000;
    const startedAt = rt.now();
    const ids = heldJobIds(rt);
    let wait: number;
    try {
      const answer = await rt.api.heartbeat(
        rt.identity.agent_id,
        {
          running_jobs: ids.slice(0, 256),
          draining: rt.draining,
          load: {
            running_jobs: rt.runs.size,
            concurrency: rt.settings.concurrency,
            loadavg_1m: os.loadavg()[0],
            outbox: rt.outbox.size,
          },
        },
        Math.max(2_000, interval),
      );
      const abandoned = new Set(answer.abandon);
      rt.fence.renewed(
        ids.filter((id) => !abandoned.has(id)),
        startedAt,
      );
      for (const id of answer.abandon) rt.runs.get(id)?.stop('abandon');
      for (const id of answer.cancel) rt.runs.get(id)?.stop('cancel');
      setTimings(rt, {
        heartbeatSeconds: answer.heartbeat_interval_seconds,
        leaseSeconds: answer.lease_seconds,
        lostAfterSeconds: answer.lost_after_seconds,
      });
      if (answer.status !== rt.serverStatus) {
        rt.console.info(`the server says this agent is ${answer.status}`, { event: 'agent.status', status: answer.status });
        rt.serverStatus = answer.status;
      }
      rt.changed.notify();
      outage.succeeded();
      backoff.reset();
      wait = answer.heartbeat_interval_seconds * 1000 - (rt.now() - startedAt);
    } catch (error) {
      if (isTokenDead(error)) {
        await onTokenDead();
        continue;
      }
      // Retry sooner than the interval: the lease clock is running.
      wait = Math.min(interval, backoff.next(retryAfterOf(error)));
      outage.failed(error, wait);
    }
    await rt.beatNow.wait(Math.max(0, wait), rt.closed.signal);
  }
}

export async function claimLoop(rt: Runtime): Promise<void> {
  const backoff = createBackoff({ baseMs: 500, maxMs: 10_000 });
  const outage = outageTracker(rt, 'claim');
  while (!rt.draining && !rt.closed.signal.aborted) {
    const free = freeSlots(rt);
    if (free === 0 || rt.serverStatus !== 'active') {
      await rt.changed.wait(undefined, rt.closed.signal);
      continue;
    }
    const abort = (rt.claimAbort = new AbortController());
    try {
      const answer = await rt.api.claim(Math.min(free, 100), rt.settings.claimWaitSeconds, abort.signal);
      outage.succeeded();
      backoff.reset();
      for (const job of answer.jobs) launch(rt, job);
    } catch (error) {
      if (abort.signal.aborted) continue;
      if (isTokenDead(error)) {
        await rt.changed.wait(undefined, rt.closed.signal); // the heartbeat loop registers again
        continue;
      }
      const delay = backoff.next(retryAfterOf(error));
      if (isRetryable(error)) outage.failed(error, delay);
      else rt.console.error(`claim refused: ${describe(error)}`, { event: 'claim.refused', error: describe(error) });
      await sleep(delay, rt.closed.signal);
    } finally {
      rt.claimAbort = undefined;
    }
  }
}

export async function reportLoop(rt: Runtime): Promise<void> {
  const backoff = createBackoff({ baseMs: 250, maxMs: 10_000 });
  const outage = outageTracker(rt, 'reports');
  while (!rt.closed.signal.aborted) {
    const entries = rt.outbox
      .entries()
      .filter((e) => e.ready)
      .slice(0, REPORTS_PER_CALL);
    if (entries.length === 0) {
      await rt.changed.wait(60_000, rt.closed.signal);
      continue;
    }
    try {
      const results = await rt.api.reports(entries.map((e) => e.report));
      outage.succeeded();
      backoff.reset();
      for (const [i, result] of results.entries()) {
        const { report } = entries[i]!;
        if (!result.ok) {
          // 404/409: the job is no longer ours or already ended; nothing more to say.
          rt.console.warn(`report for job ${report.job_id} not applied: ${result.error.code} (${result.error.detail})`, {
            event: 'report.refused',
            id: report.job_id,
            code: result.error.code,
          });
        }
        await rt.outbox.remove(report);
        settle(rt, report);
      }
    } catch (error) {
      if (isRetryable(error) || isTokenDead(error)) {
        const delay = backoff.next(retryAfterOf(error));
        outage.failed(error, delay);
        await rt.beatNow.wait(delay, rt.closed.signal);
        continue;
      }
      // The server will never take this batch as it is: drop it rather than retry forever.
      rt.console.error(`reports refused (${describe(error)}); dropping ${entries.length}`, { event: 'report.dropped' });
      for (const { report } of entries) {
        await rt.outbox.remove(report);
        settle(rt, report);
      }
    }
  }
}

export async function fenceLoop(rt: Runtime): Promise<void> {
  while (!rt.closed.signal.aborted) {
    const now = rt.now();
    for (const id of rt.fence.overdue(now)) {
      const run = rt.runs.get(id);
      if (run) {
        rt.console.warn(
          `job ${id}: lease not renewed for ${seconds(rt.fence.silentForMs(id, now))}; stopping it before the server gives it to another agent`,
          { event: 'job.fenced', id },
        );
        run.stop('fenced');
      }
      rt.fence.forget(id);
    }
    await sleep(FENCE_CHECK_MS, rt.closed.signal);
  }
}
