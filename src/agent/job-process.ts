// One job's process tree. The script runs in its own session and process group, so a
// cancel, a timeout or a lost lease stops the whole tree (`make` and everything it
// started), not only the shell. A tiny watchdog shell per job holds a pipe from the agent:
// if the agent dies (SIGKILL, OOM, crash) the pipe closes and the watchdog kills the job's
// group, so no orphaned job keeps running while the server hands the job to another agent.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import type { Shell } from './script.js';

export interface JobExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface JobProcess {
  readonly pid: number;
  /** Resolves once the shell exited and its output was read to the end. */
  readonly exited: Promise<JobExit>;
  /** SIGTERM to the group, SIGKILL after `graceMs` if anything is left. */
  stop(graceMs: number): void;
  /** SIGKILL to the group, now. */
  kill(): void;
  /** Back-pressure: stop reading output (the job blocks on a full pipe) or resume. */
  setPaused(paused: boolean): void;
}

export interface SpawnJobInput {
  shell: Shell;
  scriptPath: string;
  cwd: string;
  env: Record<string, string>;
  /** Decoded output of stdout and stderr, merged in order of arrival. */
  onOutput(text: string): void;
}

/** After the shell exits, leftovers that escaped the group may still hold the pipes. */
const OUTPUT_DRAIN_MS = 5_000;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function startWatchdog(pgid: number): ChildProcess | undefined {
  try {
    const watchdog = spawn(
      '/bin/sh',
      ['-c', 'while read -r _; do :; done; kill -KILL -"$1" 2>/dev/null; exit 0', 'cairn-watchdog', String(pgid)],
      {
        stdio: ['pipe', 'ignore', 'ignore'],
        detached: true, // its own group: a Ctrl-C meant for the agent must not kill it first
      },
    );
    watchdog.on('error', () => {});
    watchdog.stdin?.on('error', () => {});
    watchdog.unref();
    return watchdog;
  } catch {
    return undefined;
  }
}

/** Spawns the job; throws when the shell cannot be started at all. */
export function spawnJobProcess(input: SpawnJobInput): Promise<JobProcess> {
  const child = spawn(input.shell.path, [input.scriptPath], {
    cwd: input.cwd,
    env: input.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => {
      child.off('error', reject);
      resolve(supervise(child, input));
    });
  });
}

function supervise(child: ChildProcess, input: SpawnJobInput): JobProcess {
  const pid = child.pid!;
  const watchdog = startWatchdog(pid);
  let killTimer: NodeJS.Timeout | undefined;
  for (const stream of [child.stdout!, child.stderr!]) {
    const decoder = new StringDecoder('utf8');
    stream.on('data', (chunk: Buffer) => {
      const text = decoder.write(chunk);
      if (text) input.onOutput(text);
    });
    stream.on('end', () => {
      const rest = decoder.end();
      if (rest) input.onOutput(rest);
    });
  }
  const exited = new Promise<JobExit>((resolve) => {
    child.once('exit', (code, signal) => {
      // Whatever the shell left behind in its group (`cmd &`) ends with it.
      signalGroup(pid, 'SIGKILL');
      const drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, OUTPUT_DRAIN_MS);
      child.once('close', finish);
      function finish() {
        clearTimeout(drainTimer);
        clearTimeout(killTimer);
        watchdog?.stdin?.end(); // nothing left to guard: let it exit
        resolve({ code, signal });
      }
    });
  });
  return {
    pid,
    exited,
    stop(graceMs) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signalGroup(pid, 'SIGTERM');
      clearTimeout(killTimer);
      killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
    },
    kill() {
      signalGroup(pid, 'SIGKILL');
    },
    setPaused(paused) {
      for (const stream of [child.stdout!, child.stderr!]) {
        if (paused) stream.pause();
        else stream.resume();
      }
    },
  };
}

/** A shell's exit status for a process ended by a signal: 128 + its number. */
export function exitStatusOf(exit: JobExit): number {
  if (exit.code !== null) return exit.code;
  return 128 + (exit.signal ? (constants.signals[exit.signal] ?? 0) : 0);
}
