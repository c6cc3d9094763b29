// `cairn agent`: registers (or resumes its identity), then runs its loops (loops.ts) until
// a signal. First SIGTERM/SIGINT: drain — take no new jobs, let the running ones finish
// and their reports reach the server, deregister, exit 0. Second: stop now — stop the
// jobs (nothing is reported for them), deliver what reports it can within a few seconds,
// deregister so the server retries the stopped jobs elsewhere at once (`agent_lost`),
// exit 1. Third: SIGKILL the jobs and exit at once.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { agentApi } from '../client/agent-api.js';
import { ApiError, isRetryable, retryAfterOf } from '../client/api-request.js';
import { createBackoff, sleep } from '../client/backoff.js';
import { createConsole, seconds, type AgentConsole } from './console.js';
import {
  AgentSetupError,
  forgetIdentity,
  identityFits,
  loadIdentity,
  register,
  saveIdentity,
  type StoredIdentity,
} from './identity.js';
import { removeStaleWorkspaces } from './job-workspace.js';
import { claimLoop, fenceLoop, heartbeatLoop, reportLoop } from './loops.js';
import { openOutbox, type Outbox } from './outbox.js';
import { adoptIdentity, createRuntime, type AgentSettings, type Runtime } from './runtime.js';
import { findShell } from './script.js';
import { EnvFileError, readEnvFile, redactionList } from './secrets.js';
import { lockWorkDir } from './work-dir-lock.js';

export type { AgentSettings } from './runtime.js';

/** Runs the agent until it is told to stop; answers the process exit status. */
export async function runAgent(settings: AgentSettings): Promise<number> {
  const console = createConsole({ json: settings.json, base: { agent: settings.name } });
  try {
    return await main(settings, console);
  } catch (error) {
    if (error instanceof AgentSetupError || error instanceof EnvFileError) {
      console.error(error.message, { event: 'agent.setup_failed' });
      return 2;
    }
    throw error;
  }
}

async function clearOutbox(outbox: Outbox): Promise<void> {
  for (const { report } of outbox.entries()) await outbox.remove(report);
}

/** Registers, waiting out a server that is away; undefined if `signal` aborts first. */
async function registerPatiently(settings: AgentSettings, console: AgentConsole, signal: AbortSignal) {
  const backoff = createBackoff({ baseMs: 500, maxMs: 15_000 });
  for (;;) {
    try {
      return await register({ ...settings, registrationToken: settings.registrationToken });
    } catch (error) {
      if (!isRetryable(error)) throw error;
      const delay = backoff.next(retryAfterOf(error));
      console.warn(`cannot register: ${(error as Error).message}; retrying in ${seconds(delay)}`, {
        event: 'server.unreachable',
      });
      await sleep(delay, signal);
      if (signal.aborted) return undefined;
    }
  }
}

async function establishIdentity(settings: AgentSettings, console: AgentConsole, outbox: Outbox, signal: AbortSignal) {
  const stored = await loadIdentity(settings.workDir);
  if (stored && identityFits(stored, settings)) {
    console.info(`resuming as agent ${stored.name} (${stored.agent_id}) in pool ${stored.pool}`, {
      event: 'agent.resumed',
      agent_id: stored.agent_id,
      pool: stored.pool,
    });
    return { identity: stored, timings: { heartbeatSeconds: 10, leaseSeconds: 30 } };
  }
  if (stored) {
    // Settings changed (server, name, tags, concurrency): the old identity goes away cleanly.
    await agentApi({ baseUrl: stored.url, token: stored.token })
      .deregister(stored.agent_id, 5_000)
      .catch(() => {});
    await forgetIdentity(settings.workDir);
    await clearOutbox(outbox);
  }
  const registered = await registerPatiently(settings, console, signal);
  if (!registered) return undefined;
  const { identity, registration } = registered;
  await saveIdentity(settings.workDir, identity);
  console.info(
    `registered as agent ${identity.name} (${identity.agent_id}) in pool ${identity.pool}; heartbeat ${registration.heartbeat_interval_seconds} s, lease ${registration.lease_seconds} s`,
    { event: 'agent.registered', agent_id: identity.agent_id, pool: identity.pool },
  );
  return {
    identity,
    timings: {
      heartbeatSeconds: registration.heartbeat_interval_seconds,
      leaseSeconds: registration.lease_seconds,
      lostAfterSeconds: registration.lost_after_seconds,
    },
  };
}

/** The server no longer accepts our token (an admin deregistered us): start over. */
async function registerAgain(rt: Runtime, exit: (code: number) => void): Promise<void> {
  rt.console.warn('the server no longer accepts this agent’s token (deregistered?); its jobs are void', {
    event: 'agent.token_refused',
  });
  rt.runs.forEach((run) => run.stop('abandon'));
  await clearOutbox(rt.outbox);
  await forgetIdentity(rt.settings.workDir);
  if (rt.draining) return exit(0);
  try {
    const registered = await registerPatiently(rt.settings, rt.console, rt.closed.signal);
    if (!registered) return;
    await saveIdentity(rt.settings.workDir, registered.identity);
    adoptIdentity(rt, registered.identity);
    rt.console.info(`registered again as ${registered.identity.agent_id}`, {
      event: 'agent.registered',
      agent_id: registered.identity.agent_id,
    });
  } catch (error) {
    rt.console.error(error instanceof Error ? error.message : String(error), { event: 'agent.setup_failed' });
    exit(2);
  }
}

/** Resolves true when `done()` holds, false after `timeoutMs`. */
async function until(rt: Runtime, done: () => boolean, timeoutMs = Infinity): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await rt.changed.wait(Math.min(left, 1_000));
  }
  return true;
}

/** Deregisters; on success the identity and any leftover reports are gone with it. */
async function leave(rt: Runtime, patienceMs: number): Promise<boolean> {
  const backoff = createBackoff({ baseMs: 500, maxMs: 5_000 });
  const deadline = Date.now() + patienceMs;
  for (;;) {
    try {
      await rt.api.deregister(rt.identity.agent_id, Math.max(1_000, Math.min(10_000, deadline - Date.now())));
    } catch (error) {
      const gone = error instanceof ApiError && (error.status === 401 || error.status === 404);
      if (!gone) {
        const delay = backoff.next(retryAfterOf(error));
        if (isRetryable(error) && Date.now() + delay < deadline) {
          await sleep(delay);
          continue;
        }
        rt.console.warn(`could not deregister (${(error as Error).message}); a restart resumes this identity`, {
          event: 'agent.deregister_failed',
        });
        return false;
      }
    }
    await forgetIdentity(rt.settings.workDir);
    await clearOutbox(rt.outbox);
    rt.console.info(`deregistered agent ${rt.identity.agent_id}`, {
      event: 'agent.deregistered',
      agent_id: rt.identity.agent_id,
    });
    return true;
  }
}

function onSignal(rt: Runtime, signal: string): void {
  if (!rt.draining) {
    rt.draining = true;
    rt.console.info(
      `${signal}: draining — finishing ${rt.runs.size} running job(s), taking no new ones (send it again to stop them now)`,
      { event: 'agent.draining', signal, running: rt.runs.size },
    );
    rt.claimAbort?.abort();
  } else if (!rt.stopping) {
    rt.stopping = true;
    rt.console.warn(`${signal}: stopping ${rt.runs.size} job(s) now; the server will retry them elsewhere`, {
      event: 'agent.stopping',
      signal,
    });
    rt.runs.forEach((run) => run.stop('shutdown'));
  } else {
    rt.runs.forEach((run) => run.stop('abandon'));
    process.exit(130);
  }
  rt.beatNow.notify();
  rt.changed.notify();
}

async function main(settings: AgentSettings, console: AgentConsole): Promise<number> {
  await mkdir(settings.workDir, { recursive: true, mode: 0o700 });
  const unlock = await lockWorkDir(settings.workDir);
  try {
    const secrets = settings.envFile ? await readEnvFile(settings.envFile) : {};
    const shell = await findShell();
    await removeStaleWorkspaces(settings.workDir);
    const outbox = await openOutbox(path.join(settings.workDir, 'outbox'));
    const early = new AbortController();
    const earlySignal = () => early.abort();
    process.once('SIGTERM', earlySignal).once('SIGINT', earlySignal);
    const established = await establishIdentity(settings, console, outbox, early.signal);
    process.off('SIGTERM', earlySignal).off('SIGINT', earlySignal);
    if (!established) return 0;
    const rt = createRuntime({ settings, console, outbox, shell, secrets, redactions: redactionList(secrets), ...established });
    return await serve(rt);
  } finally {
    await unlock();
  }
}

/** Runs the loops until a signal (or a dead identity) ends them; answers the exit status. */
async function serve(rt: Runtime): Promise<number> {
  let exitCode: number | undefined;
  const exit = (code: number) => {
    exitCode ??= code;
    rt.changed.notify();
  };
  const handler = (signal: NodeJS.Signals) => onSignal(rt, signal);
  process.on('SIGTERM', handler).on('SIGINT', handler);
  const loops = [heartbeatLoop(rt, () => registerAgain(rt, exit)), reportLoop(rt), fenceLoop(rt), claimLoop(rt)];
  const secrets = Object.keys(rt.secrets).length;
  rt.console.info(
    `waiting for jobs (concurrency ${rt.settings.concurrency}, ${secrets} secret(s) from --env-file, work dir ${rt.settings.workDir})`,
    { event: 'agent.ready', concurrency: rt.settings.concurrency, secrets },
  );

  await until(rt, () => rt.draining || exitCode !== undefined);
  await until(rt, () => rt.stopping || exitCode !== undefined || (rt.runs.size === 0 && rt.outbox.size === 0));
  if (rt.stopping && exitCode === undefined) {
    // Stopped jobs end within the kill grace; an upload in flight is not waited for long.
    const stopped = Promise.all([...rt.runs.values()].map((run) => run.finished));
    await Promise.race([stopped, sleep(rt.settings.killGraceSeconds * 1000 + 5_000)]);
    await until(rt, () => rt.outbox.size === 0, 5_000);
  }
  rt.closed.abort();
  rt.changed.notify();
  await Promise.allSettled(loops);
  process.off('SIGTERM', handler).off('SIGINT', handler);
  if (exitCode !== undefined) return exitCode;
  const left = await leave(rt, rt.stopping ? 5_000 : 30_000);
  if (!rt.stopping) rt.console.info(`drained${left ? '' : ' (still registered)'}; bye`, { event: 'agent.stopped' });
  return rt.stopping ? 1 : 0;
}

export { AgentSetupError, type StoredIdentity };
