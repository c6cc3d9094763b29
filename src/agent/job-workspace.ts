// Each attempt of a job gets a fresh directory, <work-dir>/jobs/<job id>-<attempt>: the
// commands' working directory and the root artifact globs are matched from. The agent's
// own files for the attempt (the script, TMPDIR) sit in its `.cairn/` subdirectory, which
// is never matched as an artifact.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AGENT_FILES_DIR } from './artifacts.js';
import { buildScript, type Shell } from './script.js';

export interface Workspace {
  dir: string;
  scriptPath: string;
  tmpDir: string;
}

export const jobsDirOf = (workDir: string) => path.join(workDir, 'jobs');

export async function prepareWorkspace(
  workDir: string,
  job: { id: string; attempt: number; name: string; commands: readonly string[] },
  shell: Shell,
): Promise<Workspace> {
  const dir = path.join(jobsDirOf(workDir), `${job.id}-${job.attempt}`);
  // "Fresh" means fresh: whatever an earlier run of this attempt left is removed.
  await rm(dir, { recursive: true, force: true });
  const own = path.join(dir, AGENT_FILES_DIR);
  const tmpDir = path.join(own, 'tmp');
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const scriptPath = path.join(own, 'script.sh');
  await writeFile(scriptPath, buildScript(job.commands, shell, `cairn job ${job.id} attempt ${job.attempt}: ${job.name}`), {
    mode: 0o700,
  });
  return { dir, scriptPath, tmpDir };
}

export async function removeWorkspace(workspace: Workspace): Promise<void> {
  await rm(workspace.dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Directories left by a previous run of the agent (it was killed): their jobs are over. */
export async function removeStaleWorkspaces(workDir: string): Promise<number> {
  const jobsDir = jobsDirOf(workDir);
  await mkdir(jobsDir, { recursive: true, mode: 0o700 });
  const entries = await readdir(jobsDir);
  await Promise.all(entries.map((name) => rm(path.join(jobsDir, name), { recursive: true, force: true })));
  return entries.length;
}
