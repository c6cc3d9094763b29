// After a job's commands end, the files under its directory that match its artifact globs
// are uploaded, each streamed from disk (`PUT /jobs/{id}/artifacts?path=…`) and checked
// against the SHA-256 the server computed. Globs are relative to the job directory and
// cannot reach outside it: no absolute patterns, no `..`, symbolic links are not followed
// nor uploaded, and every match is checked to resolve inside — the agent's own files (its
// token, its --env-file) live next to the job directories and must never leave the
// machine as an "artifact".
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { glob } from 'tinyglobby';
import type { AgentApi } from '../client/agent-api.js';
import { ApiError, isRetryable, retryAfterOf } from '../client/api-request.js';
import { createBackoff, sleep } from '../client/backoff.js';

/** The agent's own files inside a job directory (script, TMPDIR): never artifacts. */
export const AGENT_FILES_DIR = '.cairn';
const UPLOAD_ATTEMPTS = 5;

export interface ArtifactSearch {
  files: string[];
  /** Patterns refused because they point outside the job directory. */
  refused: string[];
}

export function isSafePattern(pattern: string): boolean {
  if (path.isAbsolute(pattern) || pattern.startsWith('~')) return false;
  return !pattern.split(/[\\/]+/).includes('..');
}

/** Files (relative, `/`-separated, sorted) under `root` matching `patterns`. */
export async function findArtifacts(root: string, patterns: readonly string[]): Promise<ArtifactSearch> {
  const safe = patterns.filter(isSafePattern);
  const refused = patterns.filter((p) => !isSafePattern(p));
  if (safe.length === 0) return { files: [], refused };
  const matches = await glob(safe, {
    cwd: root,
    dot: true,
    onlyFiles: true,
    followSymbolicLinks: false,
    ignore: [`${AGENT_FILES_DIR}/**`],
  });
  const realRoot = await realpath(root);
  const files: string[] = [];
  for (const match of [...new Set(matches)].sort()) {
    try {
      const real = await realpath(path.join(root, match));
      if (!real.startsWith(realRoot + path.sep) || !(await stat(real)).isFile()) continue;
      files.push(match.split(path.sep).join('/'));
    } catch {
      // vanished or a dangling link: nothing to upload
    }
  }
  return { files, refused };
}

export interface UploadOutcome {
  path: string;
  ok: boolean;
  message: string;
  /** The server refused the lease (409): stop, the job is no longer ours. */
  leaseGone?: boolean;
}

async function uploadOnce(api: AgentApi, jobId: string, leaseToken: string, root: string, file: string) {
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const full = path.join(root, file);
  const { size } = await stat(full);
  const source = createReadStream(full).pipe(hashing);
  const answer = await api.uploadArtifact(jobId, leaseToken, file, Readable.toWeb(source) as ReadableStream<Uint8Array>, size);
  const sha256 = hash.digest('hex');
  if (answer.sha256 !== sha256) throw new Error(`the server stored SHA-256 ${answer.sha256}, the file has ${sha256}`);
  return answer;
}

/** Uploads one file, retrying transient failures; never throws. */
export async function uploadArtifact(
  api: AgentApi,
  jobId: string,
  leaseToken: string,
  root: string,
  file: string,
): Promise<UploadOutcome> {
  const backoff = createBackoff({ baseMs: 500, maxMs: 8_000 });
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await uploadOnce(api, jobId, leaseToken, root, file);
      return { path: file, ok: true, message: `uploaded ${file} (${answer.size} bytes, sha256 ${answer.sha256})` };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof ApiError && error.status === 409) {
        return { path: file, ok: false, leaseGone: true, message: `cannot upload ${file}: ${error.code}` };
      }
      if (error instanceof ApiError && error.status === 413) {
        return { path: file, ok: false, message: `cannot upload ${file}: larger than the server accepts` };
      }
      if (!isRetryable(error) || attempt >= UPLOAD_ATTEMPTS) {
        return { path: file, ok: false, message: `cannot upload ${file}: ${reason}` };
      }
      await sleep(backoff.next(retryAfterOf(error)));
    }
  }
}
