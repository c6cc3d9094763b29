// The real `cairn agent` against a real server: shell jobs run and complete, their logs
// arrive with agent-local secrets redacted, artifacts download byte for byte, retry rules
// apply to exit statuses, and cancels and timeouts leave no process behind.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/process.js';
import { processAlive, startAgent, startServer, waitUntil, type E2eAgent, type E2eServer } from './harness.js';

const SECRET = 'tok_9f8e7d6c5b4a-very-secret';

let server: E2eServer;
let agent: E2eAgent;
let pool: { name: string; token: string };

beforeAll(async () => {
  server = await startServer();
  pool = await server.createPool('linux');
  agent = await startAgent(server, pool, { concurrency: 2, secrets: { DEPLOY_TOKEN: SECRET } });
}, 120_000);
afterAll(async () => {
  await agent?.stop();
  await server?.close();
});

const done = (job: { state: string }) => ['completed', 'failed', 'dead_lettered', 'canceled', 'timed_out'].includes(job.state);

describe('cairn agent runs shell jobs', () => {
  it('runs a job’s commands, streams its log with the secret redacted, uploads its artifact', async () => {
    const job = await server.enqueue({
      pool: 'linux',
      name: 'build',
      commands: [
        'echo "deploying with $DEPLOY_TOKEN"',
        // The secret split across two writes half a second apart: two chunks of the log.
        'printf "%s" "$(echo "$DEPLOY_TOKEN" | cut -c1-8)"; sleep 0.7; printf "%s\\n" "$(echo "$DEPLOY_TOKEN" | cut -c9-)"',
        'echo "env says CI=$CI job=$CAIRN_JOB_ID attempt=$CAIRN_JOB_ATTEMPT"',
        'mkdir -p out && head -c 200000 /dev/urandom > out/blob.bin && sha256sum out/blob.bin',
      ],
      artifacts: ['out/*.bin'],
    });
    const finished = await server.waitForJob(job.id, done);
    expect(finished).toMatchObject({ state: 'completed', exit_status: 0, attempt: 1 });

    const log = await server.logText(job.id);
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain(SECRET.slice(0, 8) + '\n');
    expect(log).toContain('deploying with [REDACTED]\n');
    expect(log.match(/\[REDACTED\]/g)?.length).toBe(2);
    expect(log).toContain(`env says CI=true job=${job.id} attempt=1`);
    expect(log).toContain('$ mkdir -p out');

    // The artifact: listed, and downloaded bytes hash to what the job itself computed.
    const written = /^([0-9a-f]{64})\s+out\/blob\.bin$/m.exec(log)![1]!;
    const list = await server.api<{ items: Array<{ id: string; path: string; size: number; sha256: string }> }>(
      'GET',
      `/api/v1/jobs/${job.id}/artifacts`,
    );
    expect(list.body.items).toEqual([expect.objectContaining({ path: 'out/blob.bin', size: 200_000, sha256: written })]);
    const download = await server.raw(`/api/v1/artifacts/${list.body.items[0]!.id}/download`);
    expect(download.status).toBe(200);
    expect(
      createHash('sha256')
        .update(Buffer.from(await download.arrayBuffer()))
        .digest('hex'),
    ).toBe(written);
    expect(agent.process.output()).not.toContain(SECRET);
  });

  it('retries a failing command by its exit-status rule, then succeeds', async () => {
    const job = await server.enqueue({
      pool: 'linux',
      commands: ['echo "attempt $CAIRN_JOB_ATTEMPT"', 'test "$CAIRN_JOB_ATTEMPT" -ge 2 || exit 3', 'echo recovered'],
      retry: { exit_statuses: [3], backoff_seconds: 0.1 },
      max_attempts: 3,
    });
    const finished = await server.waitForJob(job.id, done);
    expect(finished).toMatchObject({ state: 'completed', attempt: 2, exit_status: 0 });
    expect(await server.logText(job.id, 1)).toContain('commands ended: exit status 3');
    expect(await server.logText(job.id, 2)).toContain('recovered');
  });

  it('dead-letters a job whose retries run out, and fails at once on a status its rule does not name', async () => {
    const exhausted = await server.enqueue({
      pool: 'linux',
      commands: ['exit 3'],
      retry: { exit_statuses: [3], backoff_seconds: 0.1 },
      max_attempts: 2,
    });
    const other = await server.enqueue({ pool: 'linux', commands: ['exit 4'], retry: { exit_statuses: [3] } });
    expect(await server.waitForJob(exhausted.id, done)).toMatchObject({ state: 'dead_lettered', attempt: 2, exit_status: 3 });
    expect(await server.waitForJob(other.id, done)).toMatchObject({ state: 'failed', attempt: 1, exit_status: 4 });
  });

  it('stops a canceled job: its whole process tree is gone and the job is canceled', async () => {
    const pids = path.join(server.dir, 'cancel.pids');
    const job = await server.enqueue({
      pool: 'linux',
      commands: [`sleep 120 & echo "$$ $!" > ${pids}; wait`],
    });
    await waitUntil(async () => (await readFile(pids, 'utf8').catch(() => '')).includes(' '), 20_000, 'the job to start');
    const [shell, child] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number) as [number, number];
    expect(processAlive(shell) && processAlive(child)).toBe(true);

    expect((await server.api('POST', `/api/v1/jobs/${job.id}/cancel`)).status).toBe(200);
    const finished = await server.waitForJob(job.id, done);
    expect(finished.state).toBe('canceled');
    await waitUntil(() => !processAlive(shell) && !processAlive(child), 10_000, 'the job’s processes to end');
  });

  it('enforces the timeout locally: the job is timed out and its process gone', async () => {
    const pids = path.join(server.dir, 'timeout.pids');
    const job = await server.enqueue({ pool: 'linux', commands: [`echo $$ > ${pids}; sleep 120`], timeout_seconds: 2 });
    const finished = await server.waitForJob(job.id, done);
    expect(finished).toMatchObject({ state: 'timed_out', attempt: 1 });
    const shell = Number(await readFile(pids, 'utf8'));
    await waitUntil(() => !processAlive(shell), 10_000, 'the timed-out process to end');
    expect(await server.logText(job.id)).toContain('(timed out)');
  });

  it('refuses what only a person can fix: a token of another pool, a bad token (exit 2)', async () => {
    const agentArgs = (extra: string[]) => [
      'agent',
      '--url',
      server.url,
      '--work-dir',
      path.join(server.dir, 'refused'),
      ...extra,
    ];
    const wrongPool = runCli(agentArgs(['--pool', 'gpu']), { CAIRN_AGENT_TOKEN: pool.token });
    expect(await wrongPool.exited).toBe(2);
    expect(wrongPool.output()).toContain('the registration token belongs to pool "linux", not "gpu"');
    const badToken = runCli(agentArgs(['--token', 'cairn_reg_nonsense']));
    expect(await badToken.exited).toBe(2);
    expect(badToken.output()).toContain('the server refused the registration token');
    // The refused registration left no agent behind.
    const agents = await server.api<{ items: Array<{ name: string }> }>('GET', '/api/v1/agents?pool=linux');
    expect(agents.body.items).toHaveLength(1);
  });
});
