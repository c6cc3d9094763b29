// Queue benchmark (issue: job queue). Run: npm run build && npx tsx bench/queue.ts
// Starts Cairn on a throwaway PostgreSQL database and drives it from a separate load
// generator process (bench/queue-load.ts) with simulated agents over HTTP: throughput on
// one database, then latencies on a fresh one; then runs graphile-worker on the same
// PostgreSQL server as the reference (bench/queue-graphile.ts).
import os from 'node:os';
import {
  cpuSeconds,
  createBenchDatabase,
  ledgerDrained,
  machine,
  postgresCpuSeconds,
  runJsonChild,
  startCairnOnPostgres,
  vacuum,
} from './lib.js';

const JOBS_A = Number(process.env.QUEUE_BENCH_JOBS_A ?? 20_000);
const JOBS_B = Number(process.env.QUEUE_BENCH_JOBS_B ?? 50_000);

type Load = (scenario: string, extra: Record<string, string>) => Promise<Record<string, unknown>>;

/** A Cairn server on its own throwaway database, and a way to run load-generator scenarios on it. */
async function onServer<T>(dbName: string, port: number, drained: Record<string, number>, fn: (load: Load) => Promise<T>) {
  const server = await startCairnOnPostgres(dbName, port, { CAIRN_DB_POOL_SIZE: process.env.QUEUE_BENCH_POOL ?? '10' });
  try {
    const env = { BENCH_URL: server.url, BENCH_TOKEN: server.token };
    return await fn(async (scenario, extra) => {
      // Each scenario starts once the ledger has caught up with the one before, and after a
      // VACUUM of what that one left: otherwise autovacuum may clean up after it inside this
      // scenario's window (its CPU per job varied by half from run to run that way).
      await ledgerDrained(server.dbUrl);
      await vacuum(server.dbUrl);
      let start: { server: number; postgres: number } | undefined;
      const result = await runJsonChild('bench/queue-load.ts', [scenario], { ...env, ...extra }, (mark) => {
        if (mark === 'start') start = { server: cpuSeconds(server.pid), postgres: postgresCpuSeconds() };
      });
      // Sequencing the jobs' audit leaves is part of what they cost: the CPU readings end
      // once the ledger has caught up.
      drained[`${scenario} ${JSON.stringify(extra)}`] = await ledgerDrained(server.dbUrl);
      if (start) {
        result.cpu_seconds = {
          server: cpuSeconds(server.pid) - start.server,
          postgres: postgresCpuSeconds() - start.postgres,
          load_generator: Number(result.load_generator_cpu_seconds),
        };
      }
      return result;
    });
  } finally {
    await server.close();
  }
}

async function cairn() {
  const drained: Record<string, number> = {};
  // QUEUE_BENCH_FUSED=0 leaves the one-round-trip runs out (a baseline server without it).
  const withFused = process.env.QUEUE_BENCH_FUSED !== '0';
  const skipped: Record<string, unknown> = { jobs_per_second: NaN, latencies_ms: {}, api_p99_ms: NaN };
  // QUEUE_BENCH_ONLY=latency skips the throughput runs (give the rates below).
  const latencyOnly = process.env.QUEUE_BENCH_ONLY === 'latency';
  const throughput = latencyOnly
    ? { a: skipped, aFused: skipped, aIdle: skipped, b: skipped, bFused: skipped }
    : await throughputRuns(drained, withFused, skipped);
  // Each protocol's claim latency at half of its own (a) peak: claim + complete at half of
  // the three-call peak, one round trip at half of the one-round-trip peak. The two-call
  // pattern at the one-round-trip rate runs near its saturation, and measures its backlog.
  // QUEUE_BENCH_RATE / QUEUE_BENCH_RATE_FUSED pin them, to compare two servers under the same load.
  const half = Number(process.env.QUEUE_BENCH_RATE ?? Math.round(Number(throughput.a.jobs_per_second) / 2));
  const halfFused = Number(process.env.QUEUE_BENCH_RATE_FUSED ?? Math.round(Number(throughput.aFused.jobs_per_second) / 2));
  // Latencies on a database of their own: right after the throughput runs, the tail showed
  // the minute of background work that 140,000 jobs leave behind (see bench/README.md).
  const latency = await onServer('cairn_bench_queue_latency', 3202, drained, async (load) => ({
    rate: await load('claim-rate', { RATE: String(half), JOBS: String(half * 20) }),
    rateFused: withFused
      ? await load('claim-rate', { RATE: String(halfFused), JOBS: String(halfFused * 20), ...FUSED })
      : skipped,
    dispatch: await load('dispatch', { JOBS: '400', INTERVAL: '25' }),
    // The 1,000 heartbeating agents beside a claim load the server can carry, rather than
    // beside (a), which saturates the machine and so measures its queue.
    rateIdle: withFused
      ? await load('claim-rate', { RATE: String(halfFused), JOBS: String(halfFused * 20), IDLE_AGENTS: '1000', ...FUSED })
      : skipped,
  }));
  return { ...throughput, ...latency, ledger_drain_waits_ms: drained };
}

const FUSED = { PROTOCOL: 'fused' };

async function throughputRuns(drained: Record<string, number>, withFused: boolean, skipped: Record<string, unknown>) {
  return onServer('cairn_bench_queue', 3201, drained, async (load) => {
    // Three calls per job (claim, start, complete), then one (a claim that starts its jobs
    // and hands in the last ones: see the queue README, "One round trip per job").
    const a = await load('throughput', { MAX: '1', AGENTS: '32', JOBS: String(JOBS_A) });
    const aFused = withFused ? await load('throughput', { MAX: '1', AGENTS: '32', JOBS: String(JOBS_A), ...FUSED }) : skipped;
    const aIdle = await load('throughput', {
      MAX: '1',
      AGENTS: '32',
      JOBS: String(JOBS_A),
      IDLE_AGENTS: '1000',
      ...(withFused ? FUSED : {}),
    });
    // Batched claims drain faster than four producers enqueue; eight keep the queue fed.
    const b = await load('throughput', { MAX: '50', AGENTS: '32', JOBS: String(JOBS_B), PRODUCERS: '8' });
    const bFused = withFused
      ? await load('throughput', { MAX: '50', AGENTS: '32', JOBS: String(JOBS_B), PRODUCERS: '8', ...FUSED })
      : skipped;
    return { a, aFused, aIdle, b, bFused };
  });
}

async function graphile(batched: boolean, jobs: number) {
  const db = await createBenchDatabase('cairn_bench_graphile');
  try {
    return await runJsonChild('bench/queue-graphile.ts', [], {
      BENCH_GW_URL: db.url,
      JOBS: String(jobs),
      BATCHED: batched ? '1' : '0',
    });
  } finally {
    await db.drop();
  }
}

const results = await cairn();
const reference = process.env.QUEUE_BENCH_ONLY === 'latency' ? undefined : await graphile(false, JOBS_A);
const gwUnbatched = reference ?? { jobs_per_second: NaN };
const gwBatched = reference ? await graphile(true, JOBS_B) : { jobs_per_second: NaN };
const lat = (r: Record<string, unknown>, kind: string) => {
  const l = (r.latencies_ms as Record<string, { p50: number; p99: number }>)[kind];
  return l ? `${l.p50} / ${l.p99}` : 'n/a';
};
const rps = (r: Record<string, unknown>) => Math.round(Number(r.jobs_per_second));
const filled = (r: Record<string, unknown>) =>
  `; ${Math.round(Number(r.jobs_per_second_once_filled))} once the producers are done`;
console.log(`\nmachine: ${machine()}; server, load generator and PostgreSQL share the machine\n`);
console.log('| measure | result | reference |');
console.log('|---|---|---|');
console.log(
  `| (a) end to end, 1 job per claim, 32 agents, ${JOBS_A} jobs: claim, start, complete | ${rps(results.a)} jobs/s${filled(results.a)} (claim p50/p99 ${lat(results.a, 'claim')} ms) | graphile-worker unbatched: ${rps(gwUnbatched)} jobs/s |`,
);
console.log(
  `| (a) the same, one round trip per job (claim with start and reports) | ${rps(results.aFused)} jobs/s${filled(results.aFused)} (claim p50/p99 ${lat(results.aFused, 'claim')} ms) | |`,
);
console.log(
  `| (b) end to end, claims of 50, 32 agents, ${JOBS_B} jobs: claim, start, complete | ${rps(results.b)} jobs/s${filled(results.b)} | graphile-worker batched: ${rps(gwBatched)} jobs/s |`,
);
console.log(`| (b) the same, one round trip per batch | ${rps(results.bFused)} jobs/s${filled(results.bFused)} | |`);
console.log(
  `| claim latency, claim + complete, at half of (a)'s three-call peak (${Number(results.rate.rate)} claims/s), p50 / p99 | ${lat(results.rate, 'claim')} ms (first second: ${lat(results.rate, 'claim_warmup')} ms) | |`,
);
console.log(
  `| claim latency, one round trip, at half of its (a) peak (${Number(results.rateFused.rate)} claims/s), p50 / p99 | ${lat(results.rateFused, 'claim')} ms (first second: ${lat(results.rateFused, 'claim_warmup')} ms) | |`,
);
console.log(`| dispatch (enqueue → long-poll claim answers), p50 / p99 | ${lat(results.dispatch, 'dispatch')} ms | |`);
console.log(
  `| (a), one round trip (unless QUEUE_BENCH_FUSED=0), with 1,000 agents heartbeating every 10 s | ${rps(results.aIdle)} jobs/s; API p99 ${Number(results.aIdle.api_p99_ms)} ms; heartbeat p50/p99 ${lat(results.aIdle, 'heartbeat')} ms | |`,
);
console.log(
  `| one round trip at ${Number(results.rateIdle.rate)} claims/s (as above) with 1,000 more agents heartbeating every 10 s | claim p50/p99 ${lat(results.rateIdle, 'claim')} ms; heartbeat p50/p99 ${lat(results.rateIdle, 'heartbeat')} ms; API p99 ${Number(results.rateIdle.api_p99_after_warmup_ms)} ms after the first second, ${Number(results.rateIdle.api_p99_ms)} ms with it | |`,
);
cpuTable([
  ['(a) claim, start, complete', results.a, 1_500],
  ['(a) one round trip', results.aFused, 1_500],
  ['(a) one round trip + 1,000 heartbeating agents', results.aIdle, 1_500],
  ['(b) claim, start, complete', results.b, 5_000],
  ['(b) one round trip', results.bFused, 5_000],
]);
console.log('\nraw:', JSON.stringify({ ...results, gwUnbatched, gwBatched }));

/**
 * CPU per job by process: where a job's time goes, held against what a target leaves per
 * job (all cores, divided by the target rate). It moves with the machine's speed as jobs/s
 * does, so compare within a pair of runs.
 */
function cpuTable(rows: [string, Record<string, unknown>, number][]) {
  console.log("\nCPU per job in µs (server and PostgreSQL until the ledger caught up; all of PostgreSQL's processes)\n");
  console.log('| scenario | server | PostgreSQL | load generator | all | the target leaves |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, r, target] of rows) {
    const cpu = r.cpu_seconds as { server: number; postgres: number; load_generator: number } | undefined;
    if (!cpu) continue;
    const us = (seconds: number) => Math.round((seconds * 1e6) / Number(r.jobs));
    const all = cpu.server + cpu.postgres + cpu.load_generator;
    const budget = Math.round((os.cpus().length * 1e6) / target);
    console.log(
      `| ${name} | ${us(cpu.server)} | ${us(cpu.postgres)} | ${us(cpu.load_generator)} | ${us(all)} | ${budget} (${target} jobs/s) |`,
    );
  }
}
