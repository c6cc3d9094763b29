// Pipelines benchmark (issue: pipelines and runs). Run: npm run build && npx tsx bench/pipelines.ts
// On a throwaway PostgreSQL database: 1,000 concurrent runs of a 3-step pipeline drained by
// 4 simulated agents (bench/pipelines-load.ts, its own process), then runs with a block
// step whose approvals are answered as they appear. Figures come from the database:
//   step transition: a step's job finished → its dependent's job created (both now() of
//   their statements), per transition;
//   approval answered → the next step's job created.
import pg from 'pg';
import { machine, percentiles, runJsonChild, startCairnOnPostgres } from './lib.js';

const RUNS = Number(process.env.PIPELINE_BENCH_RUNS ?? 1000);
const APPROVAL_RUNS = Number(process.env.PIPELINE_BENCH_APPROVAL_RUNS ?? 300);

const THREE_STEPS = `
steps:
  - { key: build, command: "true", agents: { pool: bench } }
  - { key: test, command: "true", needs: build, agents: { pool: bench } }
  - { key: ship, command: "true", needs: test, agents: { pool: bench } }
`;
const WITH_APPROVAL = `
steps:
  - { key: build, command: "true", agents: { pool: bench } }
  - { key: approve, block: "Ship it?", needs: build }
  - { key: ship, command: "true", needs: approve, agents: { pool: bench } }
`;

const server = await startCairnOnPostgres('cairn_bench_pipelines', 3211);
const BASE = server.url;
const token = server.token;

async function json<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(`${BASE}${url}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return res.json() as Promise<T>;
}

const load = (env: Record<string, string>) => runJsonChild('bench/pipelines-load.ts', [], env);
const sql = new pg.Client({ connectionString: server.dbUrl });
try {
  const pool = await json<{ registration_token: string }>('POST', '/api/v1/pools', { name: 'bench' });
  const project = async (name: string, source: string) => {
    const p = await json<{ id: string }>('POST', '/api/v1/projects', { name });
    await json('PUT', `/api/v1/projects/${p.id}/pipeline`, { source });
    return p.id;
  };
  const env = { BENCH_URL: BASE, BENCH_TOKEN: token, BENCH_POOL_TOKEN: pool.registration_token, AGENTS: '4' };
  const plain = await load({
    ...env,
    BENCH_PROJECT: await project('Three steps', THREE_STEPS),
    RUNS: String(RUNS),
    JOBS_PER_RUN: '3',
  });
  const gated = await load({
    ...env,
    BENCH_PROJECT: await project('With approval', WITH_APPROVAL),
    RUNS: String(APPROVAL_RUNS),
    JOBS_PER_RUN: '2',
    APPROVE: '1',
  });

  await sql.connect();
  const transitions = await sql.query<{ ms: number }>(
    `SELECT extract(epoch FROM (next.created_at - prev.finished_at)) * 1000 AS ms
       FROM run_steps s
       JOIN run_steps d ON d.run_id = s.run_id AND s.key = ANY(d.needs)
       JOIN job_history prev ON prev.id = s.job_id
       JOIN job_history next ON next.id = d.job_id
      WHERE s.type = 'command' AND d.type = 'command'`,
  );
  const approvals = await sql.query<{ ms: number }>(
    `SELECT extract(epoch FROM (j.created_at - a.resolved_at)) * 1000 AS ms
       FROM approvals a
       JOIN run_steps d ON d.run_id = a.run_id AND a.step_key = ANY(d.needs)
       JOIN job_history j ON j.id = d.job_id
      WHERE a.state = 'approved'`,
  );
  const t = percentiles(transitions.rows.map((r) => Number(r.ms)));
  const a = percentiles(approvals.rows.map((r) => Number(r.ms)));
  // 0 ms: the dependent's job was created by the transaction that ended the step.
  const sameCommit = transitions.rows.filter((r) => Number(r.ms) === 0).length;
  type Latency = { p50: number; p99: number; max: number; count: number };
  const complete = plain.complete as Latency;
  const respond = gated.respond as Latency;
  console.log(`\nmachine: ${machine()}; server, load generator and PostgreSQL share the machine\n`);
  console.log('| measure | p50 | p99 | max | samples | target |');
  console.log('|---|---|---|---|---|---|');
  console.log(
    `| step finished → dependent's job queued (${RUNS} runs × 3 steps, 4 agents) | ${t.p50} ms | ${t.p99} ms | ${t.max} ms | ${t.count} | p99 < 20 ms |`,
  );
  console.log(
    `| approval answered → next job queued (${APPROVAL_RUNS} runs) | ${a.p50} ms | ${a.p99} ms | ${a.max} ms | ${a.count} | p99 < 50 ms |`,
  );
  console.log(
    `| agent's completion report (≤ 50 jobs; commits the next steps' jobs) | ${complete.p50} ms | ${complete.p99} ms | ${complete.max} ms | ${complete.count} | |`,
  );
  console.log(
    `| answering an approval (commits the next step's job) | ${respond.p50} ms | ${respond.p99} ms | ${respond.max} ms | ${respond.count} | p99 < 50 ms |`,
  );
  console.log(`\ntransitions queued in the commit that ended the step: ${sameCommit} of ${t.count}`);
  console.log(
    `\nwall time: ${RUNS} runs (${Number(plain.jobs)} jobs) in ${Number(plain.seconds).toFixed(1)} s; ${APPROVAL_RUNS} gated runs in ${Number(gated.seconds).toFixed(1)} s`,
  );
} finally {
  await sql.end().catch(() => {});
  await server.close();
}
