// What artifact uploads refuse: bad paths, missing or stale leases, other agents, users,
// wrong content types, bodies over the limit (declared or streamed), connections cut midway.
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { claimedJob, uploadArtifact, type UploadOptions } from '../../../test/helpers/artifacts.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { createPool, registerAgent, report, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';

let t: TestApp;
let owner: TestUser;
let agentA: TestAgent;
let agentB: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  const pool = await createPool(t, owner, 'build');
  agentA = await registerAgent(t, pool, { name: 'a', max_concurrency: 100 });
  agentB = await registerAgent(t, pool, { name: 'b', max_concurrency: 100 });
});
afterAll(() => t.close());

const upload = (
  agent: TestAgent,
  job: JobJson,
  artifactPath: string,
  body: Buffer | string | Readable,
  opts: UploadOptions = {},
) => uploadArtifact(t, agent, job, artifactPath, body, opts);

/** Streams `data` in pieces with no Content-Length, as a chunked upload arrives. */
const chunked = (data: Buffer, piece = 64 * 1024) =>
  Readable.from(Array.from({ length: Math.ceil(data.length / piece) }, (_, i) => data.subarray(i * piece, (i + 1) * piece)));

describe('what is refused', () => {
  it('paths that are not plain relative ones (400)', async () => {
    const job = await claimedJob(t, owner, agentA);
    for (const bad of [
      '../escape',
      'a/../../b',
      '/etc/passwd',
      'a//b',
      './a',
      'a/./b',
      'dir/',
      'a\\b',
      'C:/x',
      'tab\there',
      'x'.repeat(1025),
    ]) {
      const res = await upload(agentA, job, bad, 'x');
      expect(res.statusCode, `${bad}: ${res.body}`).toBe(400);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    const noPath = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${job.id}/artifacts`,
      headers: { ...agentA.headers, 'content-type': 'application/octet-stream', 'x-lease-token': job.lease_token! },
      payload: 'x',
    });
    expect(noPath.statusCode).toBe(400);
    const list = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/artifacts`, headers: owner.headers });
    expect(list.json()).toMatchObject({ items: [] });
  });

  it('uploads without the lease: another agent’s job (404), a lease that moved on or a finished job (409), users (403)', async () => {
    const job = await claimedJob(t, owner, agentA);
    expect((await upload(agentB, job, 'x.txt', 'x')).statusCode).toBe(404);
    const wrongLease = await upload(agentA, job, 'x.txt', 'x', { lease: '00000000-0000-4000-8000-000000000000' });
    expect(wrongLease.statusCode).toBe(409);
    expect(wrongLease.json()).toMatchObject({ code: 'lease_not_current' });
    expect((await upload(agentA, job, 'x.txt', 'x', { headers: { 'x-lease-token': 'nope' } })).statusCode).toBe(400);
    for (const type of ['multipart/form-data; boundary=x', 'text/plain', 'garbage']) {
      const res = await upload(agentA, job, 'x.txt', 'x', { headers: { 'content-type': type } });
      expect(res.statusCode, `${type}: ${res.body}`).toBe(415);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    const noLease = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/jobs/${job.id}/artifacts?path=x.txt`,
      headers: { ...agentA.headers, 'content-type': 'application/octet-stream' },
      payload: 'x',
    });
    expect(noLease.statusCode).toBe(400);
    const user = await upload(agentA, job, 'x.txt', 'x', { headers: owner.headers });
    expect(user.statusCode).toBe(403);
    const json = await upload(agentA, job, 'x.txt', '{"a":1}', { headers: { 'content-type': 'application/json' } });
    expect(json.statusCode).toBe(415);
    expect((await report(t, agentA, job, 'complete', { exit_status: 0 })).statusCode).toBe(200);
    const finished = await upload(agentA, job, 'late.txt', 'x');
    expect(finished.statusCode).toBe(409);
    expect(finished.json()).toMatchObject({ code: 'job_finished' });
  });
});

describe('the size limit', () => {
  let small: TestApp;
  let user: TestUser;
  let agent: TestAgent;
  const tempFiles = async () => readdir(path.join(small.deps.config.blobDir, 'tmp')).catch(() => []);

  beforeAll(async () => {
    small = await buildTestApp({ CAIRN_ARTIFACT_MAX_BYTES: '4096' });
    user = await createOrgAndLogin(small);
    agent = await registerAgent(small, await createPool(small, user, 'small'), { max_concurrency: 10 });
  });
  afterAll(() => small.close());

  it('refuses a declared Content-Length over the limit before reading, and a streamed body once it passes it', async () => {
    const job = await claimedJob(small, user, agent, 'small');
    const declared = await upload(agent, job, 'big.bin', randomBytes(5000), { app: small });
    expect(declared.statusCode).toBe(413);
    expect(declared.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(declared.json()).toMatchObject({ code: 'artifact_too_large', max_bytes: 4096 });

    const streamed = await upload(agent, job, 'big.bin', chunked(randomBytes(5000), 1000), { app: small });
    expect(streamed.statusCode).toBe(413);
    expect(streamed.json()).toMatchObject({ code: 'artifact_too_large' });
    expect(await tempFiles()).toEqual([]);
    const list = await small.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/artifacts`, headers: user.headers });
    expect(list.json()).toMatchObject({ items: [] });

    const fits = await upload(agent, job, 'fits.bin', chunked(randomBytes(4096), 1000), { app: small });
    expect(fits.statusCode, fits.body).toBe(201);
    expect(await tempFiles()).toEqual([]);
  });
});

describe('uploads over a real connection', () => {
  let small: TestApp;
  let user: TestUser;
  let agent: TestAgent;
  let base: URL;
  const tempFiles = async () => readdir(path.join(small.deps.config.blobDir, 'tmp')).catch(() => [] as string[]);

  beforeAll(async () => {
    small = await buildTestApp({ CAIRN_ARTIFACT_MAX_BYTES: '65536' });
    user = await createOrgAndLogin(small);
    agent = await registerAgent(small, await createPool(small, user, 'wire'), { max_concurrency: 10 });
    base = new URL(await small.app.listen({ host: '127.0.0.1', port: 0 }));
  });
  afterAll(() => small.close());

  function put(job: JobJson, name: string) {
    return http.request(new URL(`/api/v1/jobs/${job.id}/artifacts?path=${name}`, base), {
      method: 'PUT',
      headers: { ...agent.headers, 'content-type': 'application/octet-stream', 'x-lease-token': job.lease_token! },
    });
  }

  it('a chunked body that passes the limit still gets its 413 answer (the connection is not cut)', async () => {
    const job = await claimedJob(small, user, agent, 'wire');
    const req = put(job, 'big.bin');
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
    });
    for (let i = 0; i < 500; i++) req.write(randomBytes(10_000));
    req.end();
    const { status, body } = await answer;
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ code: 'artifact_too_large', max_bytes: 65536 });
    expect(await tempFiles()).toEqual([]);
  });

  it('an upload cut off midway leaves no temporary file and no artifact', async () => {
    const job = await claimedJob(small, user, agent, 'wire');
    const req = put(job, 'cut.bin');
    req.on('error', () => {}); // we are the ones cutting it
    req.write(randomBytes(20_000));
    // Wait until the server is writing the upload's temporary file, then go away.
    await vi.waitFor(async () => expect(await tempFiles()).toHaveLength(1), { timeout: 5_000, interval: 20 });
    req.destroy();
    await vi.waitFor(async () => expect(await tempFiles()).toEqual([]), { timeout: 5_000, interval: 20 });
    const list = await small.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/artifacts`, headers: user.headers });
    expect(list.json()).toMatchObject({ items: [] });
  });
});
