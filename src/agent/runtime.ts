// The running agent's shared state, and the moves every loop makes on it: launching a
// claimed job, and letting go of one once its report is settled.
import { agentApi, type AgentApi, type ClaimedJob, type FinalReport } from '../client/agent-api.js';
import type { AgentConsole } from './console.js';
import { createLeaseFence, fenceWindowMs, monotonicNow, type FenceTimings, type LeaseFence } from './fence.js';
import type { StoredIdentity } from './identity.js';
import { runJob, type JobRun } from './job-runner.js';
import type { Outbox } from './outbox.js';
import type { Shell } from './script.js';

export interface AgentSettings {
  url: string;
  registrationToken?: string;
  /** Expected pool of the registration token (checked, not chosen: a token has one pool). */
  pool?: string;
  name: string;
  tags: Record<string, string>;
  concurrency: number;
  workDir: string;
  envFile?: string;
  json: boolean;
  killGraceSeconds: number;
  keepJobDirs: boolean;
  /** How long one claim long-polls the server. */
  claimWaitSeconds: number;
  version: string;
  /** The agent's environment; only PATH, HOME, USER, LOGNAME, LANG and TZ reach jobs. */
  agentEnv: Record<string, string | undefined>;
}

/** Wakes whoever waits for "something changed" (a slot freed, a report queued, a signal). */
export interface Notifier {
  /** Resolves on the next notify(), after `timeoutMs`, or when `signal` aborts. */
  wait(timeoutMs?: number, signal?: AbortSignal): Promise<void>;
  notify(): void;
}

export function createNotifier(): Notifier {
  const waiters = new Set<() => void>();
  return {
    wait(timeoutMs, signal) {
      return new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const timer = timeoutMs === undefined ? undefined : setTimeout(wake, timeoutMs);
        function wake() {
          clearTimeout(timer);
          signal?.removeEventListener('abort', wake);
          waiters.delete(wake);
          resolve();
        }
        waiters.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    },
    notify() {
      [...waiters].forEach((wake) => wake());
    },
  };
}

export interface Runtime {
  settings: AgentSettings;
  console: AgentConsole;
  outbox: Outbox;
  fence: LeaseFence;
  shell: Shell;
  secrets: Record<string, string>;
  redactions: readonly string[];
  identity: StoredIdentity;
  api: AgentApi;
  timings: FenceTimings;
  /** Jobs this agent holds: running, finishing, or waiting for their report's delivery. */
  runs: Map<string, JobRun>;
  /** What the server last said: only `active` agents get work. */
  serverStatus: string;
  /** First signal: take no new jobs, finish the running ones. */
  draining: boolean;
  /** Second signal: stop the running jobs too. */
  stopping: boolean;
  /** Aborted when the agent exits: ends every loop. */
  closed: AbortController;
  changed: Notifier;
  beatNow: Notifier;
  claimAbort: AbortController | undefined;
  now(): number;
}

export function createRuntime(
  init: Pick<Runtime, 'settings' | 'console' | 'outbox' | 'shell' | 'secrets' | 'redactions' | 'identity' | 'timings'>,
): Runtime {
  return {
    ...init,
    api: agentApi({ baseUrl: init.identity.url, token: init.identity.token, userAgent: `cairn-agent/${init.settings.version}` }),
    fence: createLeaseFence(init.timings),
    runs: new Map(),
    serverStatus: 'active',
    draining: false,
    stopping: false,
    closed: new AbortController(),
    changed: createNotifier(),
    beatNow: createNotifier(),
    claimAbort: undefined,
    now: monotonicNow,
  };
}

/** Switches to a new identity (after registering again). */
export function adoptIdentity(rt: Runtime, identity: StoredIdentity): void {
  rt.identity = identity;
  rt.api = agentApi({ baseUrl: identity.url, token: identity.token, userAgent: `cairn-agent/${rt.settings.version}` });
  // A long-poll parked under the old identity would wait out its whole poll for nothing.
  rt.claimAbort?.abort();
  rt.changed.notify();
}

export function setTimings(rt: Runtime, timings: FenceTimings): void {
  rt.timings = timings;
  rt.fence.setTimings(timings);
}

/** Job ids whose leases the heartbeat renews: held jobs and undelivered reports. */
export function heldJobIds(rt: Runtime): string[] {
  return [...new Set([...rt.runs.keys(), ...rt.outbox.entries().map((e) => e.report.job_id)])];
}

export const freeSlots = (rt: Runtime) => Math.max(0, rt.settings.concurrency - rt.runs.size);

function release(rt: Runtime, jobId: string, run: JobRun): void {
  if (rt.runs.get(jobId) !== run) return;
  rt.runs.delete(jobId);
  rt.fence.forget(jobId);
  rt.changed.notify();
}

export function launch(rt: Runtime, job: ClaimedJob): void {
  const claimedAt = rt.now();
  // The server handed this job to us again: whatever we still had of it is stale.
  rt.runs.get(job.id)?.stop('abandon');
  rt.console.info(`claimed job ${job.id} "${job.name}" (attempt ${job.attempt}, ${job.priority})`, {
    event: 'job.claimed',
    id: job.id,
    attempt: job.attempt,
    priority: job.priority,
  });
  const run = runJob(
    {
      api: rt.api,
      workDir: rt.settings.workDir,
      agentId: rt.identity.agent_id,
      agentName: rt.identity.name,
      killGraceMs: rt.settings.killGraceSeconds * 1000,
      keepJobDirs: rt.settings.keepJobDirs,
      shell: rt.shell,
      secrets: rt.secrets,
      redactions: rt.redactions,
      agentEnv: rt.settings.agentEnv,
      serverUrl: rt.identity.url,
      console: rt.console,
      fence: rt.fence,
      now: () => rt.now(),
      fenceWindowMs: () => fenceWindowMs(rt.timings),
      keepReport: async (report, ready) => {
        await rt.outbox.add(report, ready);
        rt.changed.notify();
      },
      dropReport: (report) => rt.outbox.remove(report),
    },
    job,
    claimedAt,
  );
  rt.runs.set(job.id, run);
  rt.changed.notify();
  void run.finished.then((result) => {
    // A reported job stays held (its lease renewed) until the report is settled.
    if (result === 'dropped' || !rt.outbox.entries().some((e) => e.report.lease_token === job.lease_token)) {
      release(rt, job.id, run);
    }
  });
}

/** The server answered a report (or it can never be delivered): let go of its job. */
export function settle(rt: Runtime, report: FinalReport): void {
  const run = rt.runs.get(report.job_id);
  if (run && run.job.lease_token === report.lease_token) release(rt, report.job_id, run);
  rt.changed.notify();
}
