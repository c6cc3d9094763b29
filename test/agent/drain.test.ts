// Two real agents drain a mixed-priority batch of real shell jobs (each runs once, the
// best priorities first), and an agent told to stop (SIGTERM) finishes its job, takes no
// other, deregisters and exits 0.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive, startAgent, startServer, waitUntil, type E2eAgent, type E2eServer, type JobView } from './harness.js';

let server: E2eServer;
const agents: E2eAgent[] = [];

beforeAll(async () => {
  server = await startServer();
}, 120_000);
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.close();
});

const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'CRITICAL'] as const;

describe('two agents and a batch', () => {
  let pool: { name: string; token: string };
  beforeAll(async () => {
    pool = await server.createPool('batch');
    agents.push(
      ...(await Promise.all(['a', 'b'].map((name) => startAgent(server, pool, { name: `drain-${name}`, concurrency: 2 })))),
    );
  }, 120_000);

  it('drain 32 jobs of mixed priority: every job runs once and completes, higher priorities claimed first', async () => {
    const ran = path.join(server.dir, 'ran.txt');
    const jobs = Array.from({ length: 32 }, (_, i) => ({
      pool: pool.name,
      name: `job-${i}`,
      priority: PRIORITIES[i % 4],
      commands: [`echo "$CAIRN_JOB_ID $CAIRN_AGENT_NAME" >> ${ran}`, 'sleep 0.1'],
    }));
    // One atomic batch: every job is queued before the agents' waiting claims wake, so
    // the claim order is the queue's to decide.
    const res = await server.api<{ jobs: JobView[] }>('POST', '/api/v1/jobs/batch', { jobs });
    expect(res.status).toBe(201);
    const ids = res.body.jobs.map((j) => j.id);
    const finished = await Promise.all(ids.map((id) => server.waitForJob(id, (j) => j.state === 'completed', 25_000)));

    expect(finished.every((j) => j.attempt === 1 && j.exit_status === 0)).toBe(true);
    const lines = (await readFile(ran, 'utf8')).trim().split('\n');
    expect(lines.map((l) => l.split(' ')[0]).sort()).toEqual([...ids].sort());
    const byAgent = new Set(lines.map((l) => l.split(' ')[1]));
    expect(byAgent).toEqual(new Set(['drain-a', 'drain-b']));

    // A lower priority is claimed only when no higher one waits.
    const claimedAt = (p: string) => finished.filter((j) => j.priority === p).map((j) => Date.parse(j.claimed_at as string));
    for (let i = 1; i < PRIORITIES.length; i++) {
      expect(Math.max(...claimedAt(PRIORITIES[i]!))).toBeLessThanOrEqual(Math.min(...claimedAt(PRIORITIES[i - 1]!)));
    }
  });
});

describe('stopping an agent', () => {
  it('drains on SIGTERM: finishes the running job, takes no new one, deregisters, exits 0', async () => {
    const pool = await server.createPool('drain');
    const agent = await startAgent(server, pool, { name: 'drainer', args: ['--json'] });
    agents.push(agent);
    const marker = path.join(server.dir, 'drain-started');
    const running = await server.enqueue({ pool: pool.name, commands: [`touch ${marker}`, 'sleep 2', 'echo finished'] });
    await server.waitForJob(running.id, (j) => j.state === 'running');
    await agent.process.waitForOutput(/started job/);

    agent.process.child.kill('SIGTERM');
    await agent.process.waitForOutput(/draining/);
    const waiting = await server.enqueue({ pool: pool.name, commands: ['echo should not run here'] });
    expect(await agent.process.exited).toBe(0);

    expect(await server.job(running.id)).toMatchObject({ state: 'completed', exit_status: 0 });
    expect(await server.logText(running.id)).toContain('finished');
    expect(await server.job(waiting.id)).toMatchObject({ state: 'queued', attempt: 0 });
    const agentId = /registered as agent drainer \(([0-9a-f-]{36})\)/.exec(agent.process.output())![1]!;
    const seen = await server.api<{ status: string }>('GET', `/api/v1/agents/${agentId}`);
    expect(seen.status === 404 || seen.body.status === 'stopped').toBe(true);
    expect(agent.process.output()).toMatch(/deregistered agent/);
    // --json: every line is one JSON object with a level, a time, an event and a message.
    const lines = agent.process.output().trim().split('\n');
    for (const line of lines)
      expect(JSON.parse(line)).toMatchObject({
        level: expect.any(String),
        time: expect.any(String),
        event: expect.any(String),
        msg: expect.any(String),
      });
    expect(lines.map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(
      expect.arrayContaining([
        'agent.registered',
        'job.claimed',
        'job.started',
        'agent.draining',
        'job.finished',
        'agent.deregistered',
      ]),
    );
  });

  it('stops at a second SIGTERM: the job’s processes are gone, the agent deregisters, the job goes back to the queue', async () => {
    const pool = await server.createPool('stop-now');
    const agent = await startAgent(server, pool, { name: 'impatient' });
    agents.push(agent);
    const pids = path.join(server.dir, 'stop-now.pid');
    const job = await server.enqueue({
      pool: pool.name,
      commands: [`echo $$ > ${pids}`, 'sleep 120'],
      retry: { backoff_seconds: 60 },
    });
    await waitUntil(async () => (await readFile(pids, 'utf8').catch(() => '')).trim() !== '', 20_000, 'the job to start');
    const shell = Number(await readFile(pids, 'utf8'));

    agent.process.child.kill('SIGTERM');
    await agent.process.waitForOutput(/draining/);
    agent.process.child.kill('SIGTERM');
    expect(await agent.process.exited).toBe(1);
    expect(processAlive(shell)).toBe(false);
    // Deregistered: the server ended the attempt as agent_lost, which its rule retries.
    const after = await server.waitForJob(job.id, (j) => j.state === 'scheduled');
    expect(after).toMatchObject({ attempt: 1, failure_reason: null });
    expect(after.last_failure).toMatchObject({ reason: 'agent_lost' });
  });

  it('registers again when an admin deregisters it, and keeps working', async () => {
    const pool = await server.createPool('phoenix');
    // Short polls: the server keeps the claim the old identity left parked until its poll
    // ends, and that waiter takes the wake-up of the next job (reported to the queue's owner).
    const agent = await startAgent(server, pool, { name: 'phoenix', args: ['--claim-wait', '3'] });
    agents.push(agent);
    const first = /registered as agent phoenix \(([0-9a-f-]{36})\)/.exec(agent.process.output())![1]!;
    expect((await server.api('DELETE', `/api/v1/agents/${first}`)).status).toBe(204);
    const [, second] = await agent.process.waitForOutput(/registered again as ([0-9a-f-]{36})/, 20_000);
    expect(second).not.toBe(first);

    const job = await server.enqueue({ pool: pool.name, commands: ['echo still here'] });
    expect(await server.waitForJob(job.id, (j) => j.state === 'completed')).toMatchObject({ agent_id: second, attempt: 1 });
  });
});
