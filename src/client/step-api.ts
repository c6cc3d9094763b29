// What a job's own shell calls with its job token (`CAIRN_JOB_TOKEN`): hand-off outputs,
// artifacts of its run, and dynamic pipeline uploads. Used by `cairn step …` and
// `cairn pipeline upload`.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ApiError, NetworkError, apiRequest, type ApiTarget } from './api-request.js';

export interface RunOutput {
  step_key: string;
  key: string;
  value: string;
}

export interface RunArtifact {
  id: string;
  step_key: string;
  path: string;
  size: number;
  sha256: string;
}

export interface StepApi {
  setOutput(jobId: string, key: string, value: string): Promise<void>;
  outputs(runId: string): Promise<RunOutput[]>;
  uploadArtifact(jobId: string, artifactPath: string, file: string): Promise<{ id: string; size: number; sha256: string }>;
  /** The latest upload of each path, per step, filtered. */
  artifacts(runId: string, filter: { step?: string; path?: string; prefix?: string }): Promise<RunArtifact[]>;
  /** Streams the artifact into `file` (written beside it first, renamed when whole). */
  downloadArtifact(runId: string, step: string, artifactPath: string, file: string): Promise<void>;
  uploadPipeline(runId: string, source: string): Promise<{ number: number; steps: { key: string }[] }>;
}

const q = (params: Record<string, string | undefined>) =>
  new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined)).toString();

export function stepApi(target: ApiTarget): StepApi {
  const base = target.baseUrl.replace(/\/+$/, '');
  return {
    async setOutput(jobId, key, value) {
      await apiRequest(target, {
        method: 'PUT',
        path: `/api/v1/jobs/${encodeURIComponent(jobId)}/outputs/${encodeURIComponent(key)}`,
        body: value,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        timeoutMs: 30_000,
      });
    },
    async outputs(runId) {
      const path = `/api/v1/runs/${encodeURIComponent(runId)}/outputs`;
      return (await apiRequest<{ items: RunOutput[] }>(target, { method: 'GET', path, timeoutMs: 30_000 })).body!.items;
    },
    async uploadArtifact(jobId, artifactPath, file) {
      const { size } = await stat(file);
      const answer = await apiRequest<{ id: string; size: number; sha256: string }>(target, {
        method: 'PUT',
        path: `/api/v1/jobs/${encodeURIComponent(jobId)}/artifacts?${q({ path: artifactPath })}`,
        body: Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        timeoutMs: 30 * 60_000,
      });
      return answer.body!;
    },
    async artifacts(runId, filter) {
      const items: RunArtifact[] = [];
      let cursor: string | undefined;
      do {
        const path = `/api/v1/runs/${encodeURIComponent(runId)}/artifacts?${q({ ...filter, limit: '200', cursor })}`;
        const page = (
          await apiRequest<{ items: RunArtifact[]; next_cursor: string | null }>(target, {
            method: 'GET',
            path,
            timeoutMs: 30_000,
          })
        ).body!;
        items.push(...page.items);
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      return items;
    },
    async downloadArtifact(runId, step, artifactPath, file) {
      const url = `${base}/api/v1/runs/${encodeURIComponent(runId)}/artifacts/file?${q({ step, path: artifactPath })}`;
      let response: Response;
      try {
        response = await fetch(url, {
          headers: {
            authorization: `Bearer ${target.token ?? ''}`,
            ...(target.userAgent ? { 'user-agent': target.userAgent } : {}),
          },
          signal: AbortSignal.timeout(30 * 60_000),
        });
      } catch (error) {
        throw new NetworkError(`GET ${url}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      if (!response.ok || !response.body) {
        const problem = (await response.json().catch(() => ({}))) as { code?: string; detail?: string };
        throw new ApiError(
          response.status,
          problem.code ?? `http_${response.status}`,
          problem.detail ?? response.statusText,
          undefined,
          problem,
        );
      }
      await mkdir(path.dirname(file), { recursive: true });
      const partial = `${file}.cairn-partial`;
      try {
        await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), createWriteStream(partial));
        await rename(partial, file);
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
    },
    async uploadPipeline(runId, source) {
      const answer = await apiRequest<{ number: number; steps: { key: string }[] }>(target, {
        method: 'POST',
        path: `/api/v1/runs/${encodeURIComponent(runId)}/pipeline`,
        body: source,
        headers: { 'content-type': 'text/yaml; charset=utf-8' },
        timeoutMs: 60_000,
      });
      return answer.body!;
    },
  };
}
