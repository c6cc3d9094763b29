// Appending to job logs: order, idempotent retries, bad input, the lease fence, live events.
// Reading, the cap and tenancy: logs.read.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { jobLogCalls } from '../../../test/helpers/logs.js';
import {
  claim,
  createPool,
  makeDue,
  registerAgent,
  report,
  runMaintenance,
  type TestAgent,
} from '../../../test/helpers/queue.js';
import { orgTopic, type BusEvent } from '../../platform/bus.js';

let t: TestApp;
let owner: TestUser;
let agentA: TestAgent;
let agentB: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  const pool = await createPool(t, owner, 'logs');
  agentA = await registerAgent(t, pool, { name: 'a', max_concurrency: 100 });
  agentB = await registerAgent(t, pool, { name: 'b', max_concurrency: 8 });
});
afterAll(() => t.close());

const { runningJob, append, read, fullText } = jobLogCalls(() => ({ t, owner }), 'logs');

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('appending', () => {
  it('stores chunks in order by byte offset and answers the new size', async () => {
    const job = await runningJob(agentA);
    const lines = ['building…\n', 'tests: ✓ 12 passed\n', 'done 🎉\n'];
    let offset = 0;
    for (const line of lines) {
      const res = await append(agentA, job, offset, line);
      expect(res.statusCode, res.body).toBe(200);
      offset += bytes(line);
      expect(res.json()).toEqual({ size: offset, truncated: false, cancel_requested: false });
    }
    expect(await fullText(job.id)).toBe(lines.join(''));
    expect(await read(job.id)).toMatchObject({ attempt: 1, offset: 0, next_offset: offset, size: offset, finished: false });
  });

  it('a re-sent chunk is answered without being stored twice; other offsets are refused with the expected one', async () => {
    const job = await runningJob(agentA);
    expect((await append(agentA, job, 0, 'one\n')).statusCode).toBe(200);
    expect((await append(agentA, job, 4, 'two\n')).statusCode).toBe(200);
    // The agent did not hear the answer and sends "one" again: fine, and nothing changes.
    const retry = await append(agentA, job, 0, 'one\n');
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toMatchObject({ size: 8 });
    expect(await fullText(job.id)).toBe('one\ntwo\n');

    for (const [offset, data] of [
      [12, 'a gap\n'], // ahead of the log
      [0, 'different length\n'], // not the chunk stored there
      [2, 'e\n'], // inside a chunk
    ] as const) {
      const res = await append(agentA, job, offset, data);
      expect(res.statusCode, `offset ${offset}`).toBe(409);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'log_offset_mismatch', expected_offset: 8 });
    }
    expect(await fullText(job.id)).toBe('one\ntwo\n');
  });

  it('refuses a chunk over 1 MiB of UTF-8 (413)', async () => {
    const job = await runningJob(agentA);
    const res = await append(agentA, job, 0, 'é'.repeat(600_000)); // 600 000 characters, 1.2 MB
    expect(res.statusCode, res.body).toBe(413);
    expect(res.json()).toMatchObject({ code: 'log_chunk_too_large' });
  });

  it('publishes each stored chunk as a live job.log event', async () => {
    const job = await runningJob(agentA);
    const topic = orgTopic(owner.orgId);
    const events: BusEvent[] = [];
    let arrived!: () => void;
    const received = new Promise<void>((resolve) => (arrived = resolve));
    const stop = t.deps.bus.subscribe(topic, (event) => {
      if (event.type !== 'job.log') return;
      events.push(event);
      if (events.length === 2) arrived();
    });
    await t.deps.bus.ready(topic);
    try {
      await append(agentA, job, 0, 'hello\n');
      await append(agentA, job, 0, 'hello\n'); // a retry publishes nothing
      await append(agentA, job, 6, 'world\n');
      await received;
    } finally {
      stop();
    }
    expect(events.map((e) => e.data)).toEqual([
      { org_id: owner.orgId, job_id: job.id, attempt: 1, offset: 0, data: 'hello\n', project_id: null, run_id: null },
      { org_id: owner.orgId, job_id: job.id, attempt: 1, offset: 6, data: 'world\n', project_id: null, run_id: null },
    ]);
  });

  it('tells a running agent at once when its job was canceled', async () => {
    const job = await runningJob(agentA);
    const cancel = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel`, headers: owner.headers });
    expect(cancel.statusCode, cancel.body).toBe(200);
    const res = await append(agentA, job, 0, 'still going\n');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ cancel_requested: true });
  });
});

describe('bad input from an agent', () => {
  it('malformed chunks are 4xx problem+json, never stored', async () => {
    const job = await runningJob(agentA);
    const bodies: [string, string][] = [
      ['malformed JSON', '{"offset": '],
      ['an array', '[1]'],
      ['wrong types', JSON.stringify({ lease_token: job.lease_token, offset: '0', data: 7 })],
      ['a negative offset', JSON.stringify({ lease_token: job.lease_token, offset: -1, data: 'x' })],
      ['a fractional offset', JSON.stringify({ lease_token: job.lease_token, offset: 0.5, data: 'x' })],
      ['an unknown field', JSON.stringify({ lease_token: job.lease_token, offset: 0, data: 'x', level: 'info' })],
      ['a bad lease token', JSON.stringify({ lease_token: 'nope', offset: 0, data: 'x' })],
      ['a body over the route limit', JSON.stringify({ lease_token: job.lease_token, offset: 0, data: 'x'.repeat(2_200_000) })],
    ];
    for (const [what, payload] of bodies) {
      const res = await t.app.inject({
        method: 'POST',
        url: `/api/v1/jobs/${job.id}/log`,
        headers: { ...agentA.headers, 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode, `${what}: ${res.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, what).toBeLessThan(500);
      expect(res.headers['content-type'], what).toMatch(/application\/problem\+json/);
    }
    expect(await read(job.id)).toMatchObject({ size: 0 });
    // NUL is refused elsewhere in the API (text columns cannot hold it); log bytes can.
    const nul = await t.app.inject({
      method: 'POST',
      url: `/api/v1/jobs/${job.id}/log`,
      headers: { ...agentA.headers, 'content-type': 'application/json' },
      payload: `{"lease_token": "${job.lease_token}", "offset": 0, "data": "a\\u0000b\\n"}`,
    });
    expect(nul.json()).toMatchObject({ size: 4 });
    expect(await fullText(job.id)).toBe('a\u0000b\n');
    expect(await read(job.id)).toMatchObject({ data: 'a\u0000b\n' });
    // A full 1 MiB chunk fits the route's own body limit, above the server's default.
    expect((await append(agentA, job, 4, 'y'.repeat(1_048_576))).json()).toMatchObject({ size: 4 + 1_048_576 });
  });
});

describe('the lease fences log writes', () => {
  it('a job another agent holds is a 404; a lease that moved on or a finished job is a 409', async () => {
    const job = await runningJob(agentA, { retry: { backoff_seconds: 0.1, max_backoff_seconds: 1 } });
    expect((await append(agentB, job, 0, 'not mine\n')).statusCode).toBe(404);

    // The lease lapses; the reaper sends the job back and the next claim gets a new lease.
    await t.deps.db.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [job.id]);
    expect((await runMaintenance(t, owner)).leases_expired).toBe(1);
    await makeDue(t, job.id);
    await runMaintenance(t, owner);
    const [second] = await claim(t, agentA);
    expect(second).toMatchObject({ id: job.id, attempt: 2 });

    const stale = await append(agentA, job, 0, 'late output\n');
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toMatchObject({ code: 'lease_not_current' });
    expect((await append(agentA, second!, 0, 'attempt two\n')).statusCode).toBe(200);
    // Attempt 1's log is still attempt 1's; the default is the latest attempt.
    expect(await read(job.id)).toMatchObject({ attempt: 2, data: 'attempt two\n', finished: false });
    expect(await read(job.id, 'attempt=1')).toMatchObject({ attempt: 1, size: 0, finished: true });

    expect((await report(t, agentA, second!, 'complete', { exit_status: 0 })).statusCode).toBe(200);
    const done = await append(agentA, second!, 12, 'after the end\n');
    expect(done.statusCode).toBe(409);
    expect(done.json()).toMatchObject({ code: 'job_finished' });
    expect(await read(job.id)).toMatchObject({ attempt: 2, data: 'attempt two\n', finished: true });
  });

  it('users cannot append (agent token only)', async () => {
    const job = await runningJob(agentA);
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/jobs/${job.id}/log`,
      headers: owner.headers,
      payload: { lease_token: job.lease_token, offset: 0, data: 'x' },
    });
    expect(res.statusCode).toBe(403);
  });

  it('a redriven job continues its attempt numbers: the earlier attempt keeps its log', async () => {
    const job = await runningJob(agentA);
    expect((await append(agentA, job, 0, 'first life\n')).statusCode).toBe(200);
    expect((await report(t, agentA, job, 'complete', { exit_status: 3 })).json()).toMatchObject({ state: 'failed' });
    const redrive = await t.app.inject({ method: 'POST', url: `/api/v1/jobs/${job.id}/redrive`, headers: owner.headers });
    expect(redrive.statusCode, redrive.body).toBe(200);
    const [again] = await claim(t, agentA);
    expect(again).toMatchObject({ id: job.id, attempt: 2 });
    expect((await append(agentA, again!, 0, 'second life\n')).json()).toMatchObject({ size: 12 });
    expect(await fullText(job.id)).toBe('second life\n');
    expect(await fullText(job.id, 'attempt=1')).toBe('first life\n');
  });
});
