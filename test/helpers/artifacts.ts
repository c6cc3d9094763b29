// Artifact uploads as an agent does them, for the artifact tests.
import type { Readable } from 'node:stream';
import { expect } from 'vitest';
import type { TestApp } from './app.js';
import type { TestUser } from './auth.js';
import { claim, enqueue, type JobJson, type TestAgent } from './queue.js';

/** A job of `pool` enqueued by `user` and claimed by `agent` (its lease token is the upload's). */
export async function claimedJob(app: TestApp, user: TestUser, agent: TestAgent, pool = 'build'): Promise<JobJson> {
  const job = await enqueue(app, user, { pool });
  const [claimed] = await claim(app, agent);
  expect(claimed?.id).toBe(job.id);
  return claimed!;
}

export interface UploadOptions {
  lease?: string;
  headers?: Record<string, string>;
  app?: TestApp;
}

/** `PUT /jobs/{id}/artifacts?path=` with the agent's token and the job's lease (or `opts.lease`). */
export function uploadArtifact(
  app: TestApp,
  agent: TestAgent,
  job: JobJson,
  artifactPath: string,
  body: Buffer | string | Readable,
  opts: UploadOptions = {},
) {
  return (opts.app ?? app).app.inject({
    method: 'PUT',
    url: `/api/v1/jobs/${job.id}/artifacts?path=${encodeURIComponent(artifactPath)}`,
    headers: {
      ...agent.headers,
      'content-type': 'application/octet-stream',
      'x-lease-token': opts.lease ?? job.lease_token!,
      ...opts.headers,
    },
    payload: body,
  });
}
