// The CLI's live commands as child processes against a listening server: `cairn logs -f`
// prints what a job logged so far, then live chunks once each, and exits with the job;
// `cairn watch run` prints a run's events and exits on run.finished. (A run by the real
// `cairn agent` is covered where the agent is tested.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertPipelineVersion } from '../../src/features/runs/runs.queries.js';
import { publishOrgEvent } from '../../src/platform/bus.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { createOrgAndLogin, type TestUser } from '../helpers/auth.js';
import { runCli } from '../helpers/process.js';
import { claim, createPool, enqueue, registerAgent, report, type JobJson, type TestAgent } from '../helpers/queue.js';
import { listen } from './helpers.js';

let t: TestApp;
let base: string;
let user: TestUser;
beforeAll(async () => {
  t = await buildTestApp();
  base = await listen(t);
  user = await createOrgAndLogin(t);
});
afterAll(() => t.close());

const env = () => ({ CAIRN_URL: base, CAIRN_TOKEN: user.accessToken });

/** Waits until the server holds `n` subscriptions: the CLI is listening. */
async function subscriptions(n: number) {
  // The CLI starts in a few seconds (it runs from source under tsx).
  await expect
    .poll(
      async () => {
        const text = (await t.app.inject({ url: '/metrics' })).body;
        return Number(/^cairn_event_stream_subscriptions (\d+)/m.exec(text)?.[1]);
      },
      { timeout: 30_000 },
    )
    .toBe(n);
}

async function append(agent: TestAgent, job: JobJson, offset: number, data: string) {
  const res = await t.app.inject({
    method: 'POST',
    url: `/api/v1/jobs/${job.id}/log`,
    headers: agent.headers,
    payload: { lease_token: job.lease_token, offset, data },
  });
  expect(res.statusCode, res.body).toBe(200);
}

describe('cairn logs', () => {
  it('-f prints the log so far, then live output once, and exits 0 when the job completes', { timeout: 60_000 }, async () => {
    const pool = await createPool(t, user);
    const agent = await registerAgent(t, pool);
    const queued = await enqueue(t, user, { pool: pool.name, name: 'build' });
    const [job] = await claim(t, agent);
    expect(job!.id).toBe(queued.id);
    expect((await report(t, agent, job!, 'start')).statusCode).toBe(200);
    await append(agent, job!, 0, 'line 1\n');

    await subscriptions(0);
    const logs = runCli(['logs', job!.id, '-f'], env());
    await logs.waitForOutput(/line 1\n/);
    await subscriptions(1);
    await append(agent, job!, 7, 'line 2 ✓\n');
    await logs.waitForOutput(/line 2 ✓\n/);
    await append(agent, job!, 18, 'line 3\n');
    expect((await report(t, agent, job!, 'complete', { exit_status: 0 })).statusCode).toBe(200);
    expect(await logs.exited).toBe(0);
    expect(logs.output()).toContain('line 1\nline 2 ✓\nline 3\n');
    expect(logs.output().match(/line 2/g)).toHaveLength(1);
    expect(logs.output()).toContain('--- job completed ---');

    // Without -f: what is there, and done. A finished job's -f ends at once too.
    const once = runCli(['logs', job!.id], env());
    expect(await once.exited).toBe(0);
    expect(once.output()).toBe('line 1\nline 2 ✓\nline 3\n');
    const late = runCli(['logs', '-f', job!.id], env());
    expect(await late.exited).toBe(0);
  });

  it('fails clearly for a job it cannot see', { timeout: 60_000 }, async () => {
    const missing = runCli(['logs', '-f', '00000000-0000-4000-8000-000000000000'], env());
    expect(await missing.exited).toBe(2);
    expect(missing.output()).toMatch(/cairn logs: .*not found/i);
  });
});

describe('cairn watch run', () => {
  // A real run (so the topic exists for this organization); the events the test publishes
  // for it stand in for what its steps would do.
  let RUN = '';
  beforeAll(async () => {
    const project = await t.app.inject({
      method: 'POST',
      url: '/api/v1/projects',
      headers: user.headers,
      payload: { name: 'Watched' },
    });
    const projectId = project.json<{ id: string }>().id;
    await insertPipelineVersion(t.deps.db, {
      orgId: user.orgId,
      projectId,
      source: '# test',
      definition: {
        env: {},
        steps: [
          {
            type: 'block',
            key: 'gate',
            label: 'gate',
            needs: [],
            prompt: 'go?',
            fields: [],
            allowed_roles: [],
            allowed_users: [],
            on_expiry: 'fail',
          },
        ],
      },
      createdBy: 'test',
    });
    const run = await t.app.inject({
      method: 'POST',
      url: `/api/v1/projects/${projectId}/runs`,
      headers: user.headers,
      payload: {},
    });
    RUN = run.json<{ id: string }>().id;
  });

  it('prints each event of the run as a line and exits when the run finishes', { timeout: 60_000 }, async () => {
    await subscriptions(0);
    const watch = runCli(['watch', 'run', RUN], env());
    await subscriptions(1);
    publishOrgEvent(t.deps.bus, user.orgId, 'run.started', { run_id: RUN });
    publishOrgEvent(t.deps.bus, user.orgId, 'job.started', { run_id: RUN, job_id: '11112222-0000-4000-8000-000000000000' });
    publishOrgEvent(t.deps.bus, user.orgId, 'run.started', { run_id: '7a1b2c3d-0000-4000-8000-999999999999' });
    publishOrgEvent(t.deps.bus, user.orgId, 'run.finished', { run_id: RUN, state: 'failed' });
    expect(await watch.exited).toBe(1);
    const lines = watch.output().trim().split('\n');
    expect(lines).toHaveLength(3);
    const short = RUN.slice(0, 8);
    expect(lines[0]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d {2}run\\.started +run=${short}$`));
    expect(lines[1]).toMatch(new RegExp(`job\\.started +run=${short} job=11112222`));
    expect(lines[2]).toMatch(new RegExp(`run\\.finished +run=${short} state=failed`));
  });

  it('--json prints the envelopes, and a refused topic exits 2', { timeout: 60_000 }, async () => {
    await subscriptions(0);
    const watch = runCli(['watch', 'run', RUN, '--json'], env());
    await subscriptions(1);
    publishOrgEvent(t.deps.bus, user.orgId, 'run.finished', { run_id: RUN, state: 'passed' });
    expect(await watch.exited).toBe(0);
    expect(JSON.parse(watch.output())).toMatchObject({ type: 'run.finished', topic: `run:${RUN}`, data: { state: 'passed' } });
    const refused = runCli(['watch', 'run', '7a1b2c3d-0000-4000-8000-000000000002'], env());
    expect(await refused.exited).toBe(2);
    expect(refused.output()).toMatch(/refused \(topic_not_found\)/);
  });
});
