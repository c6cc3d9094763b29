// The verifier's memory of what each log proved to it before (like the Go sumdb client's
// cache): per origin, the last verified checkpoint. A later checkpoint must be an
// append-only extension of it, or the log has forked (shown different histories).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface KnownCheckpoint {
  size: number;
  root: string;
  note: string;
  source: string;
  verified_at: string;
}

export type VerifyState = Record<string, KnownCheckpoint>;

export async function readState(file: string): Promise<VerifyState> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  const parsed = JSON.parse(text) as unknown;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${file} is not a verify state file`);
  return parsed as VerifyState;
}

/** Written to a temporary file and renamed, so a crash never leaves half a state file. */
export async function writeState(file: string, state: VerifyState): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}
