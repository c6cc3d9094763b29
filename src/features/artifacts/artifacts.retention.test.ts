import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueue, registerAgent, report, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';
import { createBlobStore } from '../../platform/blobs.js';
import { startQueueMaintenance } from '../queue/queue.maintenance.js';

let t: TestApp;
let owner: TestUser;
let agent: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  agent = await registerAgent(t, await createPool(t, owner, 'keep'), { max_concurrency: 10 });
});
afterAll(() => t.close());

async function claimed(): Promise<JobJson> {
  await enqueue(t, owner, { pool: 'keep' });
  const [job] = await claim(t, agent);
  return job!;
}

async function write(job: JobJson, log: string, files: Record<string, string>) {
  const res = await t.app.inject({
    method: 'POST',
    url: `/api/v1/jobs/${job.id}/log`,
    headers: agent.headers,
    payload: { lease_token: job.lease_token, offset: 0, data: log },
  });
  expect(res.statusCode, res.body).toBe(200);
  const shas: Record<string, string> = {};
  for (const [name, content] of Object.entries(files)) {
    const up = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${job.id}/artifacts?path=${name}`,
      headers: { ...agent.headers, 'content-type': 'application/octet-stream', 'x-lease-token': job.lease_token! },
      payload: content,
    });
    expect(up.statusCode, up.body).toBe(201);
    shas[name] = up.json<{ sha256: string }>().sha256;
  }
  return shas;
}

const count = async (sql: string, jobId: string) =>
  (await t.deps.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql} WHERE job_id = $1`, [jobId])).rows[0]!.n;

describe('retention', () => {
  it('the queue’s maintenance prunes logs, artifacts and unreferenced blobs of jobs past retention, and nothing else', async () => {
    const blobs = createBlobStore(t.deps.config.blobDir);
    const old = await claimed();
    const oldShas = await write(old, 'old output\n', {
      'unique.bin': 'only the old job has this',
      'shared.bin': 'both have this',
    });
    expect((await report(t, agent, old, 'complete', { exit_status: 0 })).statusCode).toBe(200);
    const live = await claimed();
    const liveShas = await write(live, 'still running\n', { 'shared.bin': 'both have this' });
    expect(liveShas['shared.bin']).toBe(oldShas['shared.bin']);

    // The old job finished 40 days ago (retention is 30); the live job's files are old too,
    // but a job still in the queue keeps everything.
    for (const sql of [
      "UPDATE job_history SET finished_at = now() - interval '40 days' WHERE id = $1",
      "UPDATE job_logs SET updated_at = now() - interval '40 days' WHERE job_id = $1",
      "UPDATE artifacts SET created_at = now() - interval '40 days' WHERE job_id = $1",
    ]) {
      for (const id of [old.id, live.id]) await t.deps.db.query(sql, [id]);
    }
    // A temporary file a crashed upload left two days ago, and one being written now.
    await mkdir(path.join(blobs.dir, 'tmp'), { recursive: true });
    await writeFile(path.join(blobs.dir, 'tmp', 'crashed.part'), 'partial');
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await utimes(path.join(blobs.dir, 'tmp', 'crashed.part'), twoDaysAgo, twoDaysAgo);
    await writeFile(path.join(blobs.dir, 'tmp', 'uploading.part'), 'in flight');

    // The loop prunes on its first tick; wait for what it must remove, then stop it.
    const loop = startQueueMaintenance(t.deps, pino({ level: 'silent' }));
    try {
      await vi.waitFor(async () => expect(await blobs.has(oldShas['unique.bin']!)).toBe(false), {
        timeout: 10_000,
        interval: 50,
      });
      await vi.waitFor(async () => expect(await readdir(path.join(blobs.dir, 'tmp'))).toEqual(['uploading.part']), {
        timeout: 10_000,
        interval: 50,
      });
    } finally {
      await loop.stop();
    }

    expect(await count('job_logs', old.id)).toBe(0);
    expect(await count('job_log_chunks', old.id)).toBe(0);
    expect(await count('artifacts', old.id)).toBe(0);
    expect((await t.deps.db.query('SELECT 1 FROM blob_gc_candidates')).rows).toEqual([]);
    // Still named by the live job's artifact:
    expect(await blobs.has(oldShas['shared.bin']!)).toBe(true);
    expect(await count('job_logs', live.id)).toBe(1);
    expect(await count('artifacts', live.id)).toBe(1);
    const log = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${live.id}/log.txt`, headers: owner.headers });
    expect(log.body).toBe('still running\n');
  });
});
