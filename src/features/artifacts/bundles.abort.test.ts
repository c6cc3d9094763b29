// A client that stops reading a bundle holds a blob open only while it is connected: when
// it goes away, the server closes the file and the next download works.
import { randomBytes } from 'node:crypto';
import { readdir, readlink } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { claim, createPool, enqueue, registerAgent } from '../../../test/helpers/queue.js';

let t: TestApp;
let owner: TestUser;
let url: string;
let projectId: string;
const SIZE = 16 * 1024 * 1024;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  const agent = await registerAgent(t, await createPool(t, owner, 'abort'));
  const project = await t.app.inject({
    method: 'POST',
    url: '/api/v1/projects',
    headers: owner.headers,
    payload: { name: 'Abort' },
  });
  projectId = project.json<{ id: string }>().id;
  await enqueue(t, owner, { pool: 'abort', project_id: projectId });
  const [job] = await claim(t, agent);
  const res = await t.app.inject({
    method: 'PUT',
    url: `/api/v1/jobs/${job!.id}/artifacts?path=big.bin`,
    headers: { ...agent.headers, 'content-type': 'application/octet-stream', 'x-lease-token': job!.lease_token! },
    payload: randomBytes(SIZE),
  });
  expect(res.statusCode, res.body).toBe(201);
  url = await t.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(() => t.close());

/** Files of this process open under the blob directory. */
async function openBlobs(): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(`${t.deps.config.blobDir}/sha256/`)) n++;
  }
  return n;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('artifact bundle, client gone', () => {
  it('closes the blob it was streaming when the client disconnects', async () => {
    const download = `${url}/api/v1/projects/${projectId}/artifacts/download`;
    const abort = new AbortController();
    const res = await fetch(download, { headers: owner.headers, signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    // The client reads no more: backpressure keeps the server in the middle of the file.
    await until(async () => (await openBlobs()) === 1, 'the blob is open');
    abort.abort();
    await until(async () => (await openBlobs()) === 0, 'the blob is closed');

    const again = await fetch(download, { headers: owner.headers });
    expect((await again.arrayBuffer()).byteLength).toBeGreaterThan(SIZE);
  });
});
