// The server SIGKILLed under load — jobs being enqueued (with idempotency keys) and run by
// two real agents — then restarted on the same PostgreSQL database: every acknowledged
// enqueue exists and completes, a client retrying its unanswered enqueues creates no
// duplicates, and no job completes twice (exactly one `job.completed` audit event each).
//
// Needs PostgreSQL (a second server process shares the database); skipped without
// TEST_DATABASE_URL.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usingPostgres } from '../helpers/db.js';
import { startAgent, startServer, type E2eAgent, type E2eServer } from './harness.js';

const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'CRITICAL'];

describe.skipIf(!usingPostgres)('a server killed under load (PostgreSQL)', () => {
  let server: E2eServer;
  const agents: E2eAgent[] = [];

  beforeAll(async () => {
    server = await startServer();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await server?.close();
  });

  it('loses no acknowledged job and completes none twice', async () => {
    const pool = await server.createPool('chaos');
    agents.push(...(await Promise.all(['x', 'y'].map((n) => startAgent(server, pool, { name: `load-${n}`, concurrency: 2 })))));
    const ran = path.join(server.dir, 'ran.txt');
    const acknowledged = new Map<string, string>(); // idempotency key → job id
    const unanswered: number[] = [];
    // Job i, always the same request: a retry with its key must be byte-for-byte the same.
    const enqueue = (key: string, i: number) =>
      server.api<{ id: string }>('POST', '/api/v1/jobs', {
        pool: pool.name,
        priority: PRIORITIES[i % PRIORITIES.length],
        commands: [`echo "$CAIRN_JOB_ID" >> ${ran}`, 'sleep 0.05'],
        idempotency_key: key,
        retry: { backoff_seconds: 0.1 },
      });

    // Enqueue until the server dies under us.
    let next = 0;
    const load = async () => {
      for (;;) {
        const i = next++;
        try {
          const res = await enqueue(`load-${i}`, i);
          if (res.status === 201 || res.status === 200) acknowledged.set(`load-${i}`, res.body.id);
          else unanswered.push(i);
        } catch {
          unanswered.push(i);
          return;
        }
      }
    };
    const loaders = Promise.all([load(), load(), load()]);
    const ranSoFar = async () => (await readFile(ran, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
    while (acknowledged.size < 60 || (await ranSoFar()) < 4) await new Promise((r) => setTimeout(r, 20));
    await server.kill('SIGKILL');
    await loaders;
    const ranBeforeKill = await ranSoFar();

    await server.restart();
    // The client retries what it never got an answer to: same keys, so no duplicates.
    for (const i of unanswered) {
      const res = await enqueue(`load-${i}`, i);
      expect([200, 201], JSON.stringify(res.body)).toContain(res.status);
      acknowledged.set(`load-${i}`, res.body.id);
    }
    for (let i = 0; i < 10; i++) {
      acknowledged.set(`after-${i}`, (await enqueue(`after-${i}`, i)).body.id);
    }

    const ids = [...acknowledged.values()];
    expect(new Set(ids).size).toBe(acknowledged.size);
    try {
      for (const id of ids) await server.waitForJob(id, (j) => j.state === 'completed', 25_000);
    } catch (error) {
      const outputs = agents.map((a) => a.process.output()).join('\n---\n');
      throw new Error(`${(error as Error).message}\nagents said:\n${outputs}`, { cause: error });
    }

    const db = server.testDb!.db;
    const { rows: jobs } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM all_jobs');
    expect(jobs[0]!.n).toBe(ids.length);
    const { rows: completions } = await db.query<{ id: string; n: number }>(
      `SELECT resource_id AS id, count(*)::int AS n FROM audit_events WHERE action = 'job.completed' GROUP BY resource_id`,
    );
    expect(completions.filter((c) => c.n !== 1)).toEqual([]);
    expect(completions.map((c) => c.id).sort()).toEqual([...ids].sort());
    // Every job ran (some twice, when the crash ended their attempt), and the kill hit mid-run.
    const runs = (await readFile(ran, 'utf8')).split('\n').filter(Boolean);
    expect(new Set(runs)).toEqual(new Set(ids));
    expect(ranBeforeKill).toBeGreaterThan(0);
    expect(ranBeforeKill).toBeLessThan(ids.length);
  }, 45_000);
});
