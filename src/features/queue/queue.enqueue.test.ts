import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../../../test/helpers/auth.js';
import { createPool, enqueueBatch, type TestPool } from '../../../test/helpers/queue.js';
import { systemContext } from '../../platform/auth.js';
import { buildNewJob, type EnqueueInput } from './enqueue.service.js';
import { findJobs } from './jobs.queries.js';
import { PRIORITIES } from './queue.model.js';
import { insertJobs } from './queue.queries.js';

// insertJobs reads back only what the database decides (seq, created_at, the pool's name)
// and builds the rest of each row from what it sent. These tests hold what it returns to
// the rows as stored, so a column whose value the database sets cannot be missed.

let t: TestApp;
let owner: TestUser;
let pool: TestPool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = await createOrgAndLogin(t);
  pool = await createPool(t, owner, 'linux');
});
afterAll(() => t.close());

// jsonb and text refuse NUL; everything else goes.
const text = fc.string({ maxLength: 12, unit: 'grapheme' }).filter((s) => !s.includes('\u0000'));
const key = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);

const enqueueInput: fc.Arbitrary<EnqueueInput & { blocked: boolean }> = fc.record(
  {
    name: text,
    pool: fc.constant('linux'),
    priority: fc.constantFrom(...PRIORITIES),
    tags: fc.dictionary(key, text, { maxKeys: 3 }),
    commands: fc.array(text, { minLength: 1, maxLength: 3 }),
    env: fc.dictionary(key, text, { maxKeys: 4 }),
    artifacts: fc.array(text, { maxLength: 2 }),
    timeout_seconds: fc.integer({ min: 1, max: 86_400 }),
    delay_seconds: fc.integer({ min: 1, max: 3_600 }),
    max_attempts: fc.integer({ min: 1, max: 10 }),
    retry: fc.record(
      {
        exit_statuses: fc.oneof(fc.constant('any' as const), fc.array(fc.integer({ min: 1, max: 255 }), { maxLength: 3 })),
        backoff_seconds: fc.integer({ min: 1, max: 60 }),
      },
      { requiredKeys: [] },
    ),
    blocked: fc.boolean(),
  },
  { requiredKeys: ['pool', 'commands', 'blocked'] },
);

describe('enqueue answers with the rows it stored', () => {
  it('insertJobs returns each job as a read of it finds it', async () => {
    const auth = systemContext(owner.orgId, 'test');
    await fc.assert(
      fc.asyncProperty(fc.array(enqueueInput, { minLength: 1, maxLength: 5 }), async (inputs) => {
        const now = Date.now();
        const jobs = inputs.map(({ blocked, ...input }) =>
          buildNewJob(auth, pool.id, { ...input, blocked }, new Date(now + (input.delay_seconds ?? 0) * 1000), now),
        );
        const inserted = await insertJobs(t.deps.db, auth, jobs);
        const read = await findJobs(
          t.deps.db,
          owner.orgId,
          jobs.map((j) => j.id),
        );
        const stored = new Map(read.map((j) => [j.id, j]));
        expect(inserted.map((j) => j.id)).toEqual(jobs.map((j) => j.id));
        for (const job of inserted) expect(job).toEqual(stored.get(job.id));
      }),
      { numRuns: 25 },
    );
  });

  it('a batch over HTTP answers what GET shows afterwards', async () => {
    const created = await enqueueBatch(t, owner, [
      { pool: 'linux', name: 'first', priority: 'HIGH', tags: { os: 'linux' }, env: { B: '2', A: '1' } },
      { pool: 'linux', delay_seconds: 60, retry: { exit_statuses: [2], backoff_seconds: 3 } },
      { pool: 'linux', run_at: new Date(Date.now() - 60_000).toISOString(), artifacts: ['out/*.txt'] },
    ]);
    expect(created.map((j) => j.state)).toEqual(['queued', 'scheduled', 'queued']);
    for (const job of created) {
      const res = await t.app.inject({ method: 'GET', url: `/api/v1/jobs/${job.id}`, headers: owner.headers });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual(job);
    }
  });
});
