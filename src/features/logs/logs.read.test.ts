// Reading job logs (ranges, tail, whole text), the cap, and tenancy. Appending and its
// fence: logs.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { jobLogCalls } from '../../../test/helpers/logs.js';
import { claim, createPool, enqueue, registerAgent, type JobJson, type TestAgent } from '../../../test/helpers/queue.js';
import { expectHiddenFromOtherOrgs } from '../../../test/helpers/tenancy.js';
import { truncationMarker } from './logs.service.js';

let t: TestApp;
let owner: TestUser;
let agentA: TestAgent;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  const pool = await createPool(t, owner, 'logs');
  agentA = await registerAgent(t, pool, { name: 'a', max_concurrency: 100 });
});
afterAll(() => t.close());

const { runningJob, append, read, fullText } = jobLogCalls(() => ({ t, owner }), 'logs');

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

describe('reading', () => {
  let job: JobJson;
  const text = 'line 1\nzwei ü\n三 行\n🎉 four\n';

  beforeAll(async () => {
    job = await runningJob(agentA);
    let offset = 0;
    for (const part of text.match(/[^\n]*\n/g)!) {
      expect((await append(agentA, job, offset, part)).statusCode).toBe(200);
      offset += bytes(part);
    }
  });

  it('reads ranges by byte offset, never splitting a character', async () => {
    expect(await read(job.id, 'offset=0&limit=7')).toMatchObject({ offset: 0, next_offset: 7, data: 'line 1\n' });
    // Bytes 7..13 would split "ü" (bytes 12 and 13), so the range ends before it.
    expect(await read(job.id, 'offset=7&limit=6')).toMatchObject({ offset: 7, next_offset: 12, data: 'zwei ' });
    // Bytes 7..20 span two chunks and would split "行" (bytes 19..21).
    expect(await read(job.id, 'offset=7&limit=13')).toMatchObject({ offset: 7, next_offset: 19, data: 'zwei ü\n三 ' });
    // Starting inside "三" (3 bytes at offset 15) moves forward to the next character.
    const inside = await read(job.id, `offset=${bytes('line 1\nzwei ü\n') + 1}&limit=100`);
    expect(inside.data).toBe(' 行\n🎉 four\n');
    expect(inside.offset).toBe(bytes('line 1\nzwei ü\n三'));
    // A limit smaller than a character still returns that character, so paging progresses.
    const emoji = bytes('line 1\nzwei ü\n三 行\n');
    expect(await read(job.id, `offset=${emoji}&limit=1`)).toMatchObject({ data: '🎉', next_offset: emoji + 4 });
    // Past the end: nothing, at the end.
    const size = bytes(text);
    expect(await read(job.id, 'offset=100000')).toMatchObject({ offset: size, next_offset: size, data: '' });
  });

  it('pages through the whole log with next_offset', async () => {
    let offset = 0;
    let collected = '';
    for (let i = 0; i < 100; i++) {
      const page = await read(job.id, `offset=${offset}&limit=5`);
      collected += page.data;
      if (page.next_offset === page.size) break;
      offset = page.next_offset;
    }
    expect(collected).toBe(text);
  });

  it('reads the tail', async () => {
    expect(await read(job.id, 'tail=10')).toMatchObject({ data: '🎉 four\n', offset: bytes(text) - 10 });
    // The last 9 bytes begin inside "🎉": the answer starts after it.
    expect((await read(job.id, 'tail=9')).data).toBe(' four\n');
    expect((await read(job.id, 'tail=1000000')).data).toBe(text);
  });

  it('refuses tail with offset, and attempts that never ran', async () => {
    const both = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/log?tail=5&offset=0`, headers: owner.headers });
    expect(both.statusCode).toBe(400);
    const later = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}/log?attempt=2`, headers: owner.headers });
    expect(later.statusCode).toBe(404);
    expect(later.json()).toMatchObject({ code: 'attempt_not_found' });
  });

  it('streams the whole log as text, across many chunks', async () => {
    const long = await runningJob(agentA);
    const parts = Array.from({ length: 30 }, (_, i) => `${String(i).padStart(3, '0')} ${'x'.repeat(i * 10)}\n`);
    let offset = 0;
    for (const part of parts) {
      expect((await append(agentA, long, offset, part)).statusCode).toBe(200);
      offset += bytes(part);
    }
    expect(await fullText(long.id)).toBe(parts.join(''));
    expect(await fullText(long.id, 'attempt=1')).toBe(parts.join(''));
  });

  it('a job never claimed has an empty, unfinished log', async () => {
    await createPool(t, owner, 'idle');
    const waiting = await enqueue(t, owner, { pool: 'idle' });
    expect(await read(waiting.id)).toMatchObject({ attempt: 1, size: 0, data: '', finished: false });
    expect(await fullText(waiting.id)).toBe('');
  });
});

describe('the cap', () => {
  let small: TestApp;
  afterAll(() => small?.close());

  it('keeps the first CAIRN_JOB_LOG_MAX_BYTES, adds a marker line, and drops what follows', async () => {
    small = await buildTestApp({ CAIRN_JOB_LOG_MAX_BYTES: '1024' });
    const user = await createOrgAndLogin(small);
    const pool = await createPool(small, user, 'capped');
    const agent = await registerAgent(small, pool);
    await enqueue(small, user, { pool: 'capped' });
    const [job] = await claim(small, agent);
    const send = (offset: number, data: string) =>
      small.app.inject({
        method: 'POST',
        url: `/api/v1/jobs/${job!.id}/log`,
        headers: agent.headers,
        payload: { lease_token: job!.lease_token, offset, data },
      });

    expect((await send(0, 'a'.repeat(1000))).json()).toMatchObject({ size: 1000, truncated: false });
    const marker = truncationMarker(1024);
    const cut = await send(1000, 'b'.repeat(100));
    expect(cut.statusCode).toBe(200);
    expect(cut.json()).toEqual({ size: 1024 + bytes(marker), truncated: true, cancel_requested: false });
    // Later chunks are answered (the agent keeps going) and dropped.
    const dropped = await send(1100, 'c'.repeat(50));
    expect(dropped.statusCode).toBe(200);
    expect(dropped.json()).toMatchObject({ size: 1024 + bytes(marker), truncated: true });

    const res = await small.app.inject({ method: 'GET', url: `/api/v1/jobs/${job!.id}/log.txt`, headers: user.headers });
    expect(res.body).toBe('a'.repeat(1000) + 'b'.repeat(24) + marker);
    expect(res.headers['x-cairn-log-truncated']).toBe('true');
    const tail = await small.app.inject({ method: 'GET', url: `/api/v1/jobs/${job!.id}/log?tail=60`, headers: user.headers });
    expect(tail.json()).toMatchObject({ truncated: true, data: expect.stringContaining('[cairn: log truncated at 1024 bytes]') });
  });
});

describe('tenancy', () => {
  it('another organization’s job log is a 404 on every log route, for its users and its agents', async () => {
    const job = await runningJob(agentA);
    expect((await append(agentA, job, 0, 'secret output\n')).statusCode).toBe(200);
    const stranger = await createOrgAndLogin(t);
    const strangerAgent = await registerAgent(t, await createPool(t, stranger, 'logs'));
    const routes = await expectHiddenFromOtherOrgs(t, {
      pathPrefix: '/api/v1/jobs/{id}/log',
      params: { id: job.id },
      as: stranger,
      agent: strangerAgent,
      bodies: { 'POST /api/v1/jobs/{id}/log': { lease_token: job.lease_token, offset: 14, data: 'pwned\n' } },
    });
    expect(routes).toBe(3);
    expect(await fullText(job.id)).toBe('secret output\n');
  });
});
