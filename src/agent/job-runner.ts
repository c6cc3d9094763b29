// One claimed job, from `start` to its final report in the outbox:
//   start (fenced by the lease) → fresh directory → script in its own process group with a
//   clean environment → output redacted and shipped → timeout / cancel / lost lease →
//   artifacts → report.
// Stop reasons and what each reports:
//   cancel   (someone canceled)          SIGTERM, grace, SIGKILL → fail {reason: canceled}
//   timeout  (timeout_seconds passed)    SIGTERM, grace, SIGKILL → fail {reason: timeout}
//   abandon  (the lease is not ours)     SIGKILL now, nothing reported
//   fenced   (lease not renewed in time) SIGKILL now; a job that had already ended keeps its report
//   shutdown (the agent stops now)       SIGTERM, grace, SIGKILL, nothing reported: the agent
//                                        deregisters and the server retries it (agent_lost)
import { hostname } from 'node:os';
import path from 'node:path';
import type { AgentApi, ClaimedJob, FinalReport } from '../client/agent-api.js';
import { ApiError, isRetryable, retryAfterOf } from '../client/api-request.js';
import { createBackoff, sleep } from '../client/backoff.js';
import { findArtifacts, uploadArtifact } from './artifacts.js';
import { seconds, type AgentConsole } from './console.js';
import type { LeaseFence } from './fence.js';
import { buildJobEnv, writeCairnCommand } from './job-env.js';
import { exitStatusOf, spawnJobProcess, type JobExit, type JobProcess } from './job-process.js';
import { prepareWorkspace, removeWorkspace, type Workspace } from './job-workspace.js';
import { createLogShipper } from './log-shipper.js';
import { createRedactor } from './redactor.js';
import type { Shell } from './script.js';

export type StopReason = 'cancel' | 'timeout' | 'abandon' | 'fenced' | 'shutdown';

export interface RunnerContext {
  api: AgentApi;
  workDir: string;
  agentId: string;
  agentName: string;
  killGraceMs: number;
  keepJobDirs: boolean;
  shell: Shell;
  secrets: Record<string, string>;
  redactions: readonly string[];
  agentEnv: Record<string, string | undefined>;
  /** The server, as the job's shell reaches it (CAIRN_URL). */
  serverUrl: string;
  console: AgentConsole;
  fence: LeaseFence;
  now(): number;
  /** Longest the agent may hold a lease without renewing it (see fence.ts). */
  fenceWindowMs(): number;
  /** Writes the attempt's final report to the outbox; `ready` lets it be delivered. */
  keepReport(report: FinalReport, ready: boolean): Promise<void>;
  dropReport(report: FinalReport): Promise<void>;
}

export interface JobRun {
  readonly job: ClaimedJob;
  stop(reason: StopReason): void;
  /** 'reported': the final report is in the outbox, ready; 'dropped': nothing to report. */
  readonly finished: Promise<'reported' | 'dropped'>;
}

/** Waiting for the rest of a log once the commands ended; fencing cuts it shorter. */
const LOG_CLOSE_MAX_MS = 120_000;

export function runJob(ctx: RunnerContext, job: ClaimedJob, claimedAtMs: number): JobRun {
  const abort = new AbortController();
  const events = { id: job.id, attempt: job.attempt };
  let outcome: 'cancel' | 'timeout' | undefined;
  let dropped = false;
  let fenced = false;
  let proc: JobProcess | undefined;
  let exited = false;
  // The claim's job token goes to the job's shell (CAIRN_JOB_TOKEN); it is a credential, so
  // like the secrets it never reaches the log.
  const jobToken = (job as ClaimedJob & { job_token?: string }).job_token;
  const redactor = createRedactor(jobToken ? [...ctx.redactions, jobToken] : ctx.redactions);
  const shipper = createLogShipper({
    api: ctx.api,
    jobId: job.id,
    leaseToken: job.lease_token,
    onCancelRequested: () => stop('cancel'),
    onLeaseGone: () => stop('abandon'),
    onPressure: (paused) => proc?.setPaused(paused),
    warn: (message) => ctx.console.warn(`job ${job.id}: ${message}`, { event: 'job.log_problem', job_id: job.id }),
  });
  const note = (line: string) => shipper.write(redactor.push(`[cairn-agent] ${line}\n`) + redactor.flush());

  function stop(reason: StopReason) {
    if (reason === 'cancel' || reason === 'timeout') {
      if (outcome || dropped || exited) return; // an ended job keeps its own outcome
      outcome = reason;
      proc?.stop(ctx.killGraceMs);
      if (!proc) abort.abort();
      return;
    }
    if (reason === 'fenced') fenced = true;
    // Fenced while the commands still ran: the server may be giving the job away; report nothing.
    if (reason === 'abandon' || reason === 'shutdown' || (reason === 'fenced' && !exited)) dropped = true;
    abort.abort();
    if (!exited) {
      if (reason === 'shutdown') proc?.stop(ctx.killGraceMs);
      else proc?.kill();
    }
    // Nothing more goes to the server about this attempt except, if fenced after the
    // commands ended, the report already decided (its lease token fences it server-side).
    shipper.abort();
  }

  async function start(): Promise<boolean> {
    const backoff = createBackoff({ baseMs: 250, maxMs: 5_000 });
    while (!abort.signal.aborted) {
      const startedAt = ctx.now();
      try {
        await ctx.api.start(job.id, job.lease_token);
        ctx.fence.renewed([job.id], startedAt);
        return true;
      } catch (error) {
        if (!isRetryable(error)) {
          const why = error instanceof ApiError ? error.code : String(error);
          ctx.console.warn(`job ${job.id}: the server refused its start (${why}); skipping it`, {
            event: 'job.start_refused',
            ...events,
          });
          return false;
        }
        // Nothing runs before `start` succeeds, so this only bounds how long we try.
        if (ctx.now() - claimedAtMs > ctx.fenceWindowMs()) return false;
        await sleep(backoff.next(retryAfterOf(error)), abort.signal);
      }
    }
    return false;
  }

  async function spawnAndWait(workspace: Workspace): Promise<JobExit> {
    const env = buildJobEnv({
      agentEnv: ctx.agentEnv,
      jobEnv: job.env,
      secrets: ctx.secrets,
      jobId: job.id,
      attempt: job.attempt,
      agentName: ctx.agentName,
      agentId: ctx.agentId,
      jobName: job.name,
      tmpDir: workspace.tmpDir,
      serverUrl: ctx.serverUrl,
      jobToken,
      cairnDir: await writeCairnCommand(path.join(path.dirname(workspace.tmpDir), 'bin')),
    });
    proc = await spawnJobProcess({
      shell: ctx.shell,
      scriptPath: workspace.scriptPath,
      cwd: workspace.dir,
      env,
      onOutput: (text) => shipper.write(redactor.push(text)),
    });
    // A stop that came while spawning applies now.
    if (dropped || fenced) proc.kill();
    else if (outcome) proc.stop(ctx.killGraceMs);
    const timer = setTimeout(() => stop('timeout'), job.timeout_seconds * 1000);
    try {
      return await proc.exited;
    } finally {
      clearTimeout(timer);
      exited = true;
      shipper.write(redactor.flush());
    }
  }

  function reportFor(exit: JobExit | undefined, error?: string): FinalReport {
    const base = { job_id: job.id, lease_token: job.lease_token };
    if (error) return { ...base, action: 'fail', reason: 'error', message: error.slice(0, 4000) };
    const status = exitStatusOf(exit!);
    if (outcome === 'cancel') return { ...base, action: 'fail', reason: 'canceled', exit_status: status, message: 'canceled' };
    if (outcome === 'timeout') {
      return {
        ...base,
        action: 'fail',
        reason: 'timeout',
        exit_status: status,
        message: `ran past its ${job.timeout_seconds} s timeout`,
      };
    }
    // A non-zero status is a failure of reason exit_status, which the job's retry rules judge.
    return { ...base, action: 'complete', exit_status: status };
  }

  async function uploadArtifacts(workspace: Workspace): Promise<string | undefined> {
    const { files, refused } = await findArtifacts(workspace.dir, job.artifacts);
    for (const pattern of refused) note(`artifact pattern ${JSON.stringify(pattern)} points outside the job directory: ignored`);
    if (files.length === 0) note(`no files match the artifact patterns ${JSON.stringify(job.artifacts)}`);
    const failures: string[] = [];
    for (const file of files) {
      if (dropped || fenced) return undefined;
      const result = await uploadArtifact(ctx.api, job.id, job.lease_token, workspace.dir, file);
      note(result.message);
      if (result.leaseGone) stop('abandon');
      else if (!result.ok) failures.push(result.message);
    }
    return failures.length > 0 ? `artifact upload failed: ${failures.join('; ')}` : undefined;
  }

  async function execute(): Promise<'reported' | 'dropped'> {
    if (!(await start()) || dropped) return 'dropped';
    ctx.console.info(`started job ${job.id} "${job.name}" (attempt ${job.attempt})`, { event: 'job.started', ...events });
    const begun = ctx.now();
    let workspace: Workspace | undefined;
    let kept: FinalReport | undefined;
    const keep = async (next: FinalReport) => {
      await ctx.keepReport(next, false); // on disk, held back until the log is sent
      kept = next;
    };
    try {
      workspace = await prepareWorkspace(ctx.workDir, job, ctx.shell);
      note(`agent ${ctx.agentName} on ${hostname()}, attempt ${job.attempt}, ${ctx.shell.path}`);
      const exit = await spawnAndWait(workspace);
      if (dropped) return 'dropped';
      await keep(reportFor(exit));
      announce(kept!, ctx.now() - begun);
      note(
        `commands ended: exit status ${exitStatusOf(exit)}${outcome ? ` (${outcome === 'cancel' ? 'canceled' : 'timed out'})` : ''}`,
      );
      if (job.artifacts.length > 0 && outcome !== 'cancel' && !fenced) {
        const problem = await uploadArtifacts(workspace);
        // Exit 0 but an artifact is missing: later steps would break on it, so the job fails.
        if (problem && !dropped && kept!.action === 'complete' && kept!.exit_status === 0) {
          await keep(reportFor(undefined, problem));
          ctx.console.warn(`job ${job.id}: ${problem}`, { event: 'job.artifacts_failed', ...events });
        }
      }
      await shipper.close(LOG_CLOSE_MAX_MS);
    } catch (error) {
      if (!dropped && !kept) {
        const message = `the agent could not run the job: ${error instanceof Error ? error.message : String(error)}`;
        note(message);
        await keep(reportFor(undefined, message));
        announce(kept!, ctx.now() - begun);
        await shipper.close(10_000);
      }
    } finally {
      if (workspace && !ctx.keepJobDirs) await removeWorkspace(workspace).catch(() => {});
    }
    if (!kept) return 'dropped';
    if (dropped) {
      await ctx.dropReport(kept); // the lease is not ours: the server would refuse it
      return 'dropped';
    }
    await ctx.keepReport(kept, true);
    return 'reported';
  }

  function announce(report: FinalReport, elapsedMs: number) {
    ctx.console.info(`job ${job.id} finished: ${describe(report)} in ${seconds(elapsedMs)}`, {
      event: 'job.finished',
      ...events,
      action: report.action,
      exit_status: report.exit_status,
      reason: report.action === 'fail' ? report.reason : undefined,
    });
  }

  const finished = execute().catch((error: unknown) => {
    ctx.console.error(`job ${job.id}: ${String(error)}`, { event: 'job.error', ...events });
    proc?.kill();
    return 'dropped' as const;
  });
  return { job, stop, finished };
}

function describe(report: FinalReport): string {
  if (report.action === 'complete') return report.exit_status === 0 ? 'exit 0, completed' : `exit ${report.exit_status}, failed`;
  if (report.reason === 'canceled') return 'canceled';
  if (report.reason === 'timeout') return 'timed out';
  return `error (${report.message ?? 'unknown'})`;
}
