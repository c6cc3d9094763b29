// HTTP read benchmark (issue: foundation). Run: npm run build && npx tsx bench/http.ts
// Starts Cairn on PostgreSQL, a bare Fastify ceiling and a plain Fastify+pg+jose reference,
// each in its own process, and measures GET /api/v1/projects/{id} with autocannon
// (64 connections, 10 s) from this process. Also: time from start to /health/ready on an
// existing embedded data directory, and RSS at idle.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { SignJWT } from 'jose';
import { createBenchDatabase, machine, percentiles, rssKiB, startProcess, stop, waitFor } from './lib.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = 64;
const CLI = path.resolve('dist/src/cli/index.js');

async function load(url: string, headers: Record<string, string>) {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, headers, pipelining: 1 });
  const non2xx = result.non2xx + result.errors;
  return { rps: Math.round(result.requests.average), p50: result.latency.p50, p99: result.latency.p99, non2xx };
}

async function cairnOnPostgres(dbUrl: string) {
  const port = '3101';
  const server = startProcess('node', [CLI, 'serve'], {
    DATABASE_URL: dbUrl,
    PORT: port,
    CAIRN_LOG_LEVEL: 'warn',
    CAIRN_ADMIN_EMAIL: 'bench@example.test',
    CAIRN_ADMIN_PASSWORD: 'bench-password-123',
    CAIRN_RATE_LIMIT_AUTHENTICATED: '100000000',
    CAIRN_RATE_LIMIT_ANONYMOUS: '10000000',
    CAIRN_JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123',
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/health/ready`);
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bench@example.test', password: 'bench-password-123' }),
  }).then((r) => r.json() as Promise<{ access_token: string }>);
  const headers = { authorization: `Bearer ${login.access_token}` };
  const project = await fetch(`${base}/api/v1/projects`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Bench project', description: 'read in a loop' }),
  }).then((r) => r.json() as Promise<{ id: string }>);
  await load(`${base}/api/v1/projects/${project.id}`, headers); // warm-up pass is not recorded
  const result = await load(`${base}/api/v1/projects/${project.id}`, headers);
  const mutation = await createLatency(base, headers);
  const rss = rssKiB(server.pid!);
  await stop(server);
  return { ...result, rssAfterKiB: rss, projectId: project.id, mutation };
}

/**
 * A typical audited mutation as one client sees it: sequential `POST /api/v1/projects` on
 * one keep-alive connection (200 warm-up, then 1,000 timed). The denominator for the audit
 * write's share of a mutation's latency (bench/ledger.ts measures the write itself).
 */
async function createLatency(base: string, headers: Record<string, string>) {
  const post = (i: number) =>
    fetch(`${base}/api/v1/projects`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ name: `Mutation ${i}`, description: 'created by the HTTP benchmark' }),
    }).then(async (r) => {
      await r.arrayBuffer();
      if (r.status !== 201) throw new Error(`POST /api/v1/projects: ${r.status}`);
    });
  for (let i = 0; i < 200; i++) await post(i);
  const times: number[] = [];
  for (let i = 0; i < 1_000; i++) {
    const t0 = performance.now();
    await post(1_000 + i);
    times.push(performance.now() - t0);
  }
  return percentiles(times);
}

async function reference(dbUrl: string, projectId: string) {
  const port = '3102';
  const secret = 'reference-secret-reference-secret-0123';
  const server = startProcess('npx', ['tsx', 'bench/reference-server.ts'], { DATABASE_URL: dbUrl, PORT: port, SECRET: secret });
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
  await waitFor(`http://127.0.0.1:${port}/projects/${projectId}`, 30_000, 401);
  const url = `http://127.0.0.1:${port}/projects/${projectId}`;
  await load(url, { authorization: `Bearer ${token}` });
  const result = await load(url, { authorization: `Bearer ${token}` });
  await stop(server);
  return result;
}

async function ceiling() {
  const port = '3103';
  const server = startProcess('npx', ['tsx', 'bench/ceiling-server.ts'], { PORT: port });
  await waitFor(`http://127.0.0.1:${port}/constant`);
  await load(`http://127.0.0.1:${port}/constant`, {});
  const result = await load(`http://127.0.0.1:${port}/constant`, {});
  await stop(server);
  return result;
}

async function startupAndIdle() {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-'));
  const env = { CAIRN_DATA_DIR: dataDir, PORT: '3104', CAIRN_LOG_LEVEL: 'warn' };
  // First start creates the data directory; the figure is for a second start on it.
  let server = startProcess('node', [CLI, 'serve'], env);
  await waitFor('http://127.0.0.1:3104/health/ready', 60_000);
  await stop(server);
  const started = performance.now();
  server = startProcess('node', [CLI, 'serve'], env);
  await waitFor('http://127.0.0.1:3104/health/ready', 60_000);
  const readyMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 5_000));
  const idleRss = rssKiB(server.pid!);
  await stop(server);
  await rm(dataDir, { recursive: true, force: true });
  return { readyMs: Math.round(readyMs), idleRssMiB: Math.round(idleRss / 1024) };
}

const db = await createBenchDatabase('cairn_bench_http');
try {
  const cairn = await cairnOnPostgres(db.url);
  if (process.env.BENCH_ONLY === 'cairn') {
    console.log(cairn);
    process.exit(0);
  }
  const ref = await reference(db.url, cairn.projectId);
  const top = await ceiling();
  const boot = await startupAndIdle();
  const row = (name: string, r: { rps: number; p50: number; p99: number; non2xx: number }) =>
    `| ${name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.non2xx} |`;
  console.log(`\nmachine: ${machine()}; ${CONNECTIONS} connections, ${DURATION} s each, autocannon in a separate process\n`);
  console.log('| server | req/s | p50 ms | p99 ms | non-2xx/errors |');
  console.log('|---|---|---|---|---|');
  console.log(row('Cairn GET /api/v1/projects/{id} (PostgreSQL, access JWT)', cairn));
  console.log(row('reference: plain Fastify + pg + jose, same query', ref));
  console.log(row('ceiling: bare Fastify, constant JSON', top));
  console.log(`\nCairn / ceiling: ${(cairn.rps / top.rps).toFixed(2)}; Cairn / reference: ${(cairn.rps / ref.rps).toFixed(2)}`);
  console.log(`Cairn RSS after the load: ${Math.round(cairn.rssAfterKiB / 1024)} MiB`);
  console.log(
    `POST /api/v1/projects, sequential on one connection (1,000): p50 ${cairn.mutation.p50} ms, p99 ${cairn.mutation.p99} ms`,
  );
  console.log(`embedded start → /health/ready 200 (existing data dir): ${boot.readyMs} ms; idle RSS: ${boot.idleRssMiB} MiB`);
} finally {
  await db.drop();
}
