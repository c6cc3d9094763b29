// The queue benchmark's load generator, run as its own process by bench/queue.ts so its
// CPU is not the server's. It plays producers and simulated agents over HTTP (keep-alive
// node:http) and prints one JSON result line (before it, `mark start` where a scenario's
// measured window begins, for the orchestrator's CPU readings). Scenarios (argv[2]):
//   throughput  AGENTS agents claim MAX jobs at a time (start + complete each, or one
//               batched report per step when MAX > 1; with PROTOCOL=fused, one claim that
//               starts its jobs and hands in the last ones) while PRODUCERS producers
//               enqueue JOBS in batches; every agent, and IDLE_AGENTS more, heartbeat
//               every 10 s meanwhile.
//   claim-rate  claims against a full queue at RATE claims/s overall, each followed by a
//               `complete` (or, with PROTOCOL=fused, a claim that starts its job and hands
//               in the one before); claim latency (the first WARMUP_SECONDS, default 1,
//               recorded apart as claim_warmup). With IDLE_AGENTS, that many more agents
//               and the 32 heartbeat every 10 s meanwhile.
//   dispatch    agents parked in long-poll claims; one job enqueued every INTERVAL ms;
//               time from the enqueue request to the claim answer.
import { createCaller } from './http-client.js';
import { percentiles } from './lib.js';

const BASE = process.env.BENCH_URL ?? 'http://127.0.0.1:3201';
const ADMIN_TOKEN = process.env.BENCH_TOKEN!;
const n = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const http = createCaller(BASE);
const { call, latencies } = http;

function record(kind: string, ms: number) {
  let list = latencies.get(kind);
  if (!list) latencies.set(kind, (list = []));
  list.push(ms);
}

/**
 * Marks the start of what a scenario measures (`mark start` on stdout: the orchestrator reads
 * the server's and PostgreSQL's CPU from there) and, at `end()`, this process's CPU seconds
 * since, for the CPU per job of every part.
 */
function measuredWindow() {
  console.log('mark start');
  const cpu = process.cpuUsage();
  return {
    end() {
      const used = process.cpuUsage(cpu);
      return { load_generator_cpu_seconds: (used.user + used.system) / 1e6 };
    },
  };
}

interface Claimed {
  id: string;
  lease_token: string;
}

async function setupPool(name: string, agents: number, concurrency: number): Promise<string[]> {
  const pool = await call<{ registration_token: string }>('POST', '/api/v1/pools', ADMIN_TOKEN, { name });
  if (pool.status !== 201) throw new Error(`pool creation failed: ${pool.status} ${JSON.stringify(pool.json)}`);
  const tokens: string[] = [];
  for (let i = 0; i < agents; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, agents - i) }, (_, k) =>
        call<{ token: string; agent: { id: string } }>('POST', '/api/v1/agents', pool.json.registration_token, {
          name: `${name}-${i + k}`,
          max_concurrency: concurrency,
        }),
      ),
    );
    const failed = batch.find((r) => r.status !== 201);
    if (failed) throw new Error(`registration failed: ${failed.status} ${JSON.stringify(failed.json)}`);
    tokens.push(...batch.map((r) => `${r.json.agent.id} ${r.json.token}`));
  }
  return tokens;
}

/** PRODUCERS concurrent producers (default 4) enqueue `count` jobs in batches of `batch`. */
async function enqueue(pool: string, count: number, batch: number) {
  let next = 0;
  const producer = async () => {
    while (next < count) {
      const size = Math.min(batch, count - next);
      next += size;
      const jobs = Array.from({ length: size }, () => ({ pool, commands: ['true'] }));
      const res = await call('POST', '/api/v1/jobs/batch', ADMIN_TOKEN, { jobs }, 'enqueue_batch');
      if (res.status !== 201) throw new Error(`enqueue failed: ${res.status} ${JSON.stringify(res.json)}`);
    }
  };
  await Promise.all(Array.from({ length: n('PRODUCERS', 4) }, producer));
}

/**
 * The one-round-trip protocol (PROTOCOL=fused): each claim starts its jobs (`start`) and
 * carries the completions of the jobs the last claim returned (`reports`), so an agent
 * makes one request per job (or per batch) instead of three. A claim that hands jobs in
 * does not wait, so their completions are acknowledged at once; empty hands long-poll.
 */
async function workFused(token: string, max: number, total: number, counted: Counted) {
  let inHand: { job_id: string; lease_token: string; action: 'complete' }[] = [];
  for (;;) {
    const last = counted.claimed >= total;
    if (last && inHand.length === 0) return;
    const started = performance.now();
    const res = last
      ? await call<{ results: { ok: boolean }[] }>('POST', '/api/v1/queue/reports', token, { reports: inHand })
      : await call<{ jobs: Claimed[]; results?: { ok: boolean }[] }>('POST', '/api/v1/queue/claim', token, {
          max,
          start: true,
          wait_seconds: inHand.length > 0 ? 0 : 2,
          ...(inHand.length > 0 ? { reports: inHand } : {}),
        });
    const jobs = res.status === 200 && 'jobs' in res.json ? res.json.jobs : [];
    record(last ? 'complete_batch' : jobs.length > 0 ? 'claim' : 'claim_empty', performance.now() - started);
    const done = (res.json?.results ?? []).filter((r) => r.ok).length;
    if (done !== inHand.length) throw new Error(`completions refused: ${res.status} ${JSON.stringify(res.json)}`);
    counted.n += done;
    if (counted.n >= total && counted.doneAt === 0) counted.doneAt = performance.now();
    counted.claimed += jobs.length;
    inHand = jobs.map((j) => ({ job_id: j.id, lease_token: j.lease_token, action: 'complete' as const }));
  }
}

interface Counted {
  n: number;
  claimed: number;
  doneAt: number;
}

async function work(token: string, max: number, stop: () => boolean, counted: Counted) {
  while (!stop()) {
    const started = performance.now();
    const res = await call<{ jobs: Claimed[] }>('POST', '/api/v1/queue/claim', token, { max, wait_seconds: 2 });
    // Claims that found work; a claim that parked until the queue refilled or ran dry is
    // dispatch time, measured by the dispatch scenario.
    record(res.status === 200 ? 'claim' : 'claim_empty', performance.now() - started);
    if (res.status !== 200) continue;
    const jobs = res.json.jobs;
    if (max === 1) {
      const job = jobs[0]!;
      await call('POST', `/api/v1/jobs/${job.id}/start`, token, { lease_token: job.lease_token }, 'start');
      await call('POST', `/api/v1/jobs/${job.id}/complete`, token, { lease_token: job.lease_token, exit_status: 0 }, 'complete');
    } else {
      const reports = (action: string) => jobs.map((j) => ({ job_id: j.id, lease_token: j.lease_token, action }));
      await call('POST', '/api/v1/queue/reports', token, { reports: reports('start') }, 'start_batch');
      await call('POST', '/api/v1/queue/reports', token, { reports: reports('complete') }, 'complete_batch');
    }
    counted.n += jobs.length;
    // The run ends when the last job completes, not when idle claims time out after it.
    if (stop() && counted.doneAt === 0) counted.doneAt = performance.now();
  }
}

/** Every agent heartbeats every 10 s; those sent before `warmupUntil` are recorded apart. */
async function heartbeats(entries: string[], stop: () => boolean, warmupUntil = 0) {
  await Promise.all(
    entries.map(async (entry, i) => {
      const [id, token] = entry.split(' ') as [string, string];
      await new Promise((r) => setTimeout(r, (i * 10_000) / entries.length)); // spread over the interval
      while (!stop()) {
        const kind = performance.now() < warmupUntil ? 'heartbeat_warmup' : 'heartbeat';
        await call('POST', `/api/v1/agents/${id}/heartbeat`, token, { running_jobs: [] }, kind);
        await new Promise((r) => setTimeout(r, 10_000));
      }
    }),
  );
}

/** IDLE_AGENTS more agents (default none), registered in a pool of their own to heartbeat. */
function idleAgents(): Promise<string[]> {
  const count = n('IDLE_AGENTS', 0);
  return count ? setupPool(`idle-${process.pid}`, count, 1) : Promise.resolve([]);
}

async function throughput() {
  const jobs = n('JOBS', 20_000);
  const max = n('MAX', 1);
  const name = `tp-${max}-${process.pid}`;
  const agents = await setupPool(name, n('AGENTS', 32), Math.max(max, 1));
  const idle = await idleAgents();
  latencies.clear();
  const window = measuredWindow();
  const counted: Counted = { n: 0, claimed: 0, doneAt: 0 };
  let finished = false;
  // Working agents heartbeat too, as `cairn agent` does: a long run outlasts the lost-agent
  // threshold, and a lost agent's claims get nothing.
  const beats = heartbeats([...agents, ...idle], () => finished);
  const started = performance.now();
  // Once the producers are done the queue holds what is left: the agents' pace alone.
  let filled = { at: 0, done: 0 };
  const producing = enqueue(name, jobs, 500).then(() => (filled = { at: performance.now(), done: counted.n }));
  const fused = process.env.PROTOCOL === 'fused';
  await Promise.all(
    agents.map((entry) => {
      const token = entry.split(' ')[1]!;
      return fused ? workFused(token, max, jobs, counted) : work(token, max, () => counted.n >= jobs, counted);
    }),
  );
  const seconds = (counted.doneAt - started) / 1000;
  await producing;
  finished = true;
  await Promise.race([beats, new Promise((r) => setTimeout(r, 100))]);
  return {
    jobs: counted.n,
    seconds,
    jobs_per_second: counted.n / seconds,
    jobs_per_second_once_filled: (counted.n - filled.done) / ((counted.doneAt - filled.at) / 1000),
    ...window.end(),
  };
}

async function claimRate() {
  const rate = n('RATE', 500);
  const total = n('JOBS', 10_000);
  const fused = process.env.PROTOCOL === 'fused';
  const name = `rate-${fused ? 'fused' : 'two-call'}-${process.pid}`;
  const agents = await setupPool(name, 32, 1);
  // With IDLE_AGENTS, that many more agents (and the 32) heartbeat every 10 s meanwhile.
  const idle = await idleAgents();
  await enqueue(name, total, 1000);
  latencies.clear();
  const window = measuredWindow();
  let finished = false;
  const started = performance.now();
  const warmupSeconds = n('WARMUP_SECONDS', 1);
  const warmupUntil = started + warmupSeconds * 1000;
  const beats = idle.length > 0 ? heartbeats([...agents, ...idle], () => finished, warmupUntil) : Promise.resolve();
  let issued = 0;
  await Promise.all(
    agents.map(async (entry) => {
      const token = entry.split(' ')[1]!;
      let inHand: Claimed | undefined;
      for (;;) {
        const slot = issued++;
        if (slot >= total) {
          if (inHand) await call('POST', `/api/v1/jobs/${inHand.id}/complete`, token, { lease_token: inHand.lease_token });
          return;
        }
        const due = started + (slot / rate) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        // The first WARMUP_SECONDS are fresh agents' first calls on a server that just took
        // the setup's enqueue: recorded apart, so `claim` is the steady state.
        const kind = slot < rate * warmupSeconds ? 'claim_warmup' : 'claim';
        if (fused) {
          // One round trip: the claim starts its job and hands in the one claimed before.
          const reports = inHand ? [{ job_id: inHand.id, lease_token: inHand.lease_token, action: 'complete' }] : undefined;
          const res = await call<{ jobs: Claimed[] }>(
            'POST',
            '/api/v1/queue/claim',
            token,
            { max: 1, start: true, reports },
            kind,
          );
          inHand = res.json?.jobs?.[0];
          continue;
        }
        const res = await call<{ jobs: Claimed[] }>('POST', '/api/v1/queue/claim', token, { max: 1 }, kind);
        const job = res.json?.jobs?.[0];
        if (job) await call('POST', `/api/v1/jobs/${job.id}/complete`, token, { lease_token: job.lease_token });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  finished = true;
  await Promise.race([beats, new Promise((r) => setTimeout(r, 100))]);
  return { rate, seconds, ...window.end() };
}

async function dispatch() {
  const count = n('JOBS', 400);
  const interval = n('INTERVAL', 25);
  const agents = await setupPool('dispatch', 8, 50);
  const sentAt = new Map<string, number>();
  const dispatchMs: number[] = [];
  let received = 0;
  const parked = agents.map(async (entry) => {
    const token = entry.split(' ')[1]!;
    while (received < count) {
      const res = await call<{ jobs: Claimed[] }>('POST', '/api/v1/queue/claim', token, { max: 1, wait_seconds: 5 });
      const now = performance.now();
      for (const job of res.json?.jobs ?? []) {
        received++;
        const at = sentAt.get(job.id);
        if (at !== undefined) dispatchMs.push(now - at);
        await call('POST', `/api/v1/jobs/${job.id}/complete`, token, { lease_token: job.lease_token });
      }
    }
  });
  await new Promise((r) => setTimeout(r, 500)); // let every agent park
  for (let i = 0; i < count; i++) {
    const before = performance.now();
    const res = await call<{ id: string }>('POST', '/api/v1/jobs', ADMIN_TOKEN, { pool: 'dispatch', commands: ['true'] });
    sentAt.set(res.json.id, before);
    const next = before + interval - performance.now();
    if (next > 0) await new Promise((r) => setTimeout(r, next));
  }
  await Promise.all(parked);
  latencies.set('dispatch', dispatchMs);
  return { jobs: count };
}

function summary() {
  const out: Record<string, { count: number; p50: number; p99: number }> = {};
  const all: number[] = [];
  const afterWarmup: number[] = [];
  for (const [kind, list] of latencies) {
    if (kind !== 'dispatch' && kind !== 'claim_empty') {
      all.push(...list);
      if (!kind.endsWith('_warmup')) afterWarmup.push(...list);
    }
    const { count, p50, p99 } = percentiles(list);
    out[kind] = { count, p50, p99 };
  }
  return { latencies_ms: out, api_p99_ms: percentiles(all).p99, api_p99_after_warmup_ms: percentiles(afterWarmup).p99 };
}

const scenario = process.argv[2];
const result = scenario === 'throughput' ? await throughput() : scenario === 'claim-rate' ? await claimRate() : await dispatch();
console.log(JSON.stringify({ scenario, ...result, ...summary(), http_errors: http.errors() }));
http.close();
process.exit(0);
