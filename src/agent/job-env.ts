// A job's environment: a small clean base, never the agent's own environment (which may
// hold the agent's credentials or an operator's shell settings), then the job's variables,
// then the agent-local secrets, then the job's identity.
//
// Precedence, lowest to highest:
//   base (PATH, HOME, USER, LANG, TMPDIR) < job.env < --env-file secrets < CAIRN_* and CI.
// Secrets win over the job's env: a job (anyone who may enqueue) must not be able to
// replace a value the operator put on this machine — e.g. point a deploy key's companion
// URL elsewhere. The job's identity variables win over everything so that no job or file
// can make one job pose as another.
//
// The job's shell also gets CAIRN_URL and its own CAIRN_JOB_TOKEN, and a `cairn` command
// first on its PATH (this very program), so its commands can hand outputs and files to
// later steps (`cairn step output set …`, `cairn pipeline upload`).

import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { shellQuote } from './script.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface JobEnvInput {
  /** The agent process's environment, read only for the few base variables. */
  agentEnv: Record<string, string | undefined>;
  jobEnv: Record<string, string>;
  secrets: Record<string, string>;
  jobId: string;
  attempt: number;
  agentName: string;
  agentId: string;
  jobName: string;
  tmpDir: string;
  /** The server, and the job's own token (job:self) from the claim: for `cairn step …` in the job. */
  serverUrl?: string;
  jobToken?: string;
  /** A directory holding a `cairn` command (writeCairnCommand), put first on PATH. */
  cairnDir?: string;
}

export function buildJobEnv(input: JobEnvInput): Record<string, string> {
  const base: Record<string, string> = {
    PATH: [input.cairnDir, input.agentEnv.PATH || DEFAULT_PATH].filter(Boolean).join(':'),
    LANG: input.agentEnv.LANG || 'C.UTF-8',
    TMPDIR: input.tmpDir,
  };
  for (const name of ['HOME', 'USER', 'LOGNAME', 'TZ'] as const) {
    const value = input.agentEnv[name];
    if (value) base[name] = value;
  }
  return {
    ...base,
    ...input.jobEnv,
    ...input.secrets,
    CI: 'true',
    CAIRN: 'true',
    CAIRN_JOB_ID: input.jobId,
    CAIRN_JOB_NAME: input.jobName,
    CAIRN_JOB_ATTEMPT: String(input.attempt),
    CAIRN_AGENT_NAME: input.agentName,
    CAIRN_AGENT_ID: input.agentId,
    ...(input.serverUrl ? { CAIRN_URL: input.serverUrl } : {}),
    ...(input.jobToken ? { CAIRN_JOB_TOKEN: input.jobToken } : {}),
  };
}

const MODULE_FLAGS = new Set(['--import', '--loader', '--experimental-loader', '--require', '-r']);

/** A module flag's value, resolved here: the job runs in another directory, where `tsx` would not be found. */
function resolveModule(specifier: string, cwd: string): string {
  if (specifier.startsWith('.')) return path.resolve(cwd, specifier);
  if (path.isAbsolute(specifier) || /^[a-z]+:/.test(specifier)) return specifier;
  try {
    return import.meta.resolve(specifier);
  } catch {
    return specifier;
  }
}

/** How to start this same program again: node, its flags (a loader, in development), the entry script. */
export function cairnInvocation(proc: Pick<NodeJS.Process, 'execPath' | 'execArgv' | 'argv' | 'cwd'> = process): string[] {
  const flags: string[] = [];
  for (let i = 0; i < proc.execArgv.length; i++) {
    const flag = proc.execArgv[i]!;
    // A debugger flag would make the job's `cairn` fight the agent for the inspector port.
    if (flag.startsWith('--inspect')) continue;
    const [name, inline] = flag.split(/=(.*)/s, 2) as [string, string | undefined];
    if (MODULE_FLAGS.has(name) && inline !== undefined) flags.push(`${name}=${resolveModule(inline, proc.cwd())}`);
    else if (MODULE_FLAGS.has(name) && i + 1 < proc.execArgv.length)
      flags.push(name, resolveModule(proc.execArgv[++i]!, proc.cwd()));
    else flags.push(flag);
  }
  const entry = proc.argv[1];
  return [proc.execPath, ...flags, ...(entry ? [path.resolve(proc.cwd(), entry)] : [])];
}

/**
 * Writes `<dir>/cairn`, a shell script running this agent's own program, so a job uses the
 * same version of `cairn` as its agent whatever else is installed. Answers the directory.
 */
export async function writeCairnCommand(dir: string, invocation: readonly string[] = cairnInvocation()): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'cairn');
  await writeFile(file, `#!/bin/sh\nexec ${invocation.map(shellQuote).join(' ')} "$@"\n`);
  await chmod(file, 0o700);
  return dir;
}
