// Job-log calls for the logs tests: a started job to write to, appends as its agent, reads.
// The app and user are looked up at call time, so test files can take these functions at
// module level and create the app in beforeAll.
import { expect } from 'vitest';
import type { LogRange } from '../../src/client/job-log.js';
import type { TestApp } from './app.js';
import type { TestUser } from './auth.js';
import { claim, enqueue, report, type JobJson, type TestAgent } from './queue.js';

/** A read of a job's log, as `GET /jobs/{id}/log` answers it (the shape `cairn logs` reads). */
export type LogPage = LogRange;

export function jobLogCalls(context: () => { t: TestApp; owner: TestUser }, pool: string) {
  return {
    /** A job of `pool`, claimed (and started) by `agent`. */
    runningJob: async (agent: TestAgent, extra: Record<string, unknown> = {}): Promise<JobJson> => {
      const { t, owner } = context();
      const job = await enqueue(t, owner, { pool, ...extra });
      const [claimed] = await claim(t, agent);
      expect(claimed?.id).toBe(job.id);
      expect((await report(t, agent, claimed!, 'start')).statusCode).toBe(200);
      return claimed!;
    },

    append: (agent: TestAgent, job: JobJson, offset: number, data: string, lease = job.lease_token) =>
      context().t.app.inject({
        method: 'POST',
        url: `/api/v1/jobs/${job.id}/log`,
        headers: agent.headers,
        payload: { lease_token: lease, offset, data },
      }),

    read: async (jobId: string, query = '', as?: TestUser): Promise<LogPage> => {
      const { t, owner } = context();
      const res = await t.app.inject({
        method: 'GET',
        url: `/api/v1/jobs/${jobId}/log${query ? `?${query}` : ''}`,
        headers: (as ?? owner).headers,
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json<LogPage>();
    },

    fullText: async (jobId: string, query = ''): Promise<string> => {
      const { t, owner } = context();
      const res = await t.app.inject({
        method: 'GET',
        url: `/api/v1/jobs/${jobId}/log.txt${query ? `?${query}` : ''}`,
        headers: owner.headers,
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      return res.body;
    },
  };
}
