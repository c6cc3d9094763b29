// Chaos with real processes. An agent SIGKILLed mid-job: its job's processes die with it
// (the watchdog) and the job completes on the other agent. A server SIGKILLed while a job
// finishes: the agent keeps the report (on disk, across its own SIGKILL and restart) and
// delivers it when the server is back, so the job completes once, on its first attempt.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive, startAgent, startServer, waitUntil, type E2eAgent, type E2eServer } from './harness.js';

const agents: E2eAgent[] = [];
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
});

describe('an agent killed mid-job', () => {
  let server: E2eServer;
  beforeAll(async () => {
    server = await startServer();
  }, 120_000);
  afterAll(() => server?.close());

  it('takes its job’s processes with it, and the job completes on another agent', async () => {
    const pool = await server.createPool('chaos');
    const doomed = await startAgent(server, pool, { name: 'doomed' });
    agents.push(doomed);
    const pids = path.join(server.dir, 'pids');
    const job = await server.enqueue({
      pool: pool.name,
      commands: [
        `sleep 120 & echo "$CAIRN_JOB_ATTEMPT $CAIRN_AGENT_NAME $$ $!" >> ${pids}`,
        'test "$CAIRN_JOB_ATTEMPT" -ge 2 || wait',
        'echo done',
      ],
      retry: { backoff_seconds: 0.1 },
    });
    await waitUntil(async () => (await readFile(pids, 'utf8').catch(() => '')).includes('doomed'), 20_000, 'the job to start');
    const [, , shell, child] = (await readFile(pids, 'utf8')).trim().split(' ');

    // Another agent is ready before the first dies; it must not get the job while it runs.
    agents.push(await startAgent(server, pool, { name: 'survivor' }));
    expect(await server.job(job.id)).toMatchObject({ state: 'running', attempt: 1 });

    await doomed.stop('SIGKILL');
    await waitUntil(() => !processAlive(Number(shell)) && !processAlive(Number(child)), 5_000, 'the orphaned job to be killed');

    const finished = await server.waitForJob(job.id, (j) => j.state === 'completed', 25_000);
    expect(finished).toMatchObject({ attempt: 2, exit_status: 0 });
    const runs = (await readFile(pids, 'utf8')).trim().split('\n');
    expect(runs.map((line) => line.split(' ').slice(0, 2).join(' '))).toEqual(['1 doomed', '2 survivor']);
  });
});

describe('a server killed while a job finishes', () => {
  let server: E2eServer;
  beforeAll(async () => {
    // Leases long enough to outlive a server restart: the agent keeps them while it waits.
    server = await startServer({
      CAIRN_AGENT_HEARTBEAT_SECONDS: '5',
      CAIRN_JOB_LEASE_SECONDS: '60',
      CAIRN_AGENT_LOST_AFTER_MISSED: '12',
    });
  }, 120_000);
  afterAll(() => server?.close());

  it('keeps the report through the outage and the agent’s own SIGKILL, then delivers it: one completion', async () => {
    const pool = await server.createPool('outage');
    const agent = await startAgent(server, pool, { name: 'patient' });
    agents.push(agent);
    const marker = path.join(server.dir, 'outage-started');
    const job = await server.enqueue({ pool: pool.name, commands: [`touch ${marker}`, 'sleep 1.5'] });
    await waitUntil(
      async () =>
        await readFile(marker)
          .then(() => true)
          .catch(() => false),
      20_000,
      'the job to start',
    );

    await server.kill('SIGKILL');
    await agent.process.waitForOutput(/job \S+ finished: exit 0/, 20_000);
    // The report waits on disk; the agent dies too, and comes back with the same identity.
    await agent.stop('SIGKILL');
    await server.restart();
    const again = await startAgent(server, pool, { name: 'patient', workDir: agent.workDir });
    agents.push(again);
    expect(again.process.output()).toMatch(/resuming as agent patient/);

    const finished = await server.waitForJob(job.id, (j) => j.state === 'completed', 20_000);
    expect(finished).toMatchObject({ attempt: 1, exit_status: 0 });
  });
});
