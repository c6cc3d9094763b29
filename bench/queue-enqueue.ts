// Enqueue alone (issue: job queue): what one enqueued job costs the server and PostgreSQL,
// with no agents claiming. Run: npm run build && npx tsx bench/queue-enqueue.ts
// Starts Cairn on a throwaway PostgreSQL database; PRODUCERS producers (default 4) send
// batches of 500 no-op jobs (`POST /api/v1/jobs/batch`) until JOBS (default 40,000) are
// queued. CPU is read from /proc from the first batch until the ledger has sequenced every
// job's audit leaf, which is part of what an enqueue costs.
import { createCaller } from './http-client.js';
import { cpuSeconds, ledgerDrained, machine, postgresCpuSeconds, startCairnOnPostgres } from './lib.js';

const BATCH = 500;
const BATCHES = Math.ceil(Number(process.env.JOBS ?? 40_000) / BATCH);
const JOBS = BATCHES * BATCH;
const PRODUCERS = Number(process.env.PRODUCERS ?? 4);

const server = await startCairnOnPostgres('cairn_bench_enqueue', 3203, { CAIRN_DB_POOL_SIZE: '10' });
try {
  const http = createCaller(server.url);
  await http.call('POST', '/api/v1/pools', server.token, { name: 'bench' });
  const batch = { jobs: Array.from({ length: BATCH }, () => ({ pool: 'bench', commands: ['true'] })) };
  let batchesLeft = BATCHES;
  const cpu = { server: cpuSeconds(server.pid), postgres: postgresCpuSeconds() };
  const started = performance.now();
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (batchesLeft-- > 0) await http.call('POST', '/api/v1/jobs/batch', server.token, batch, 'enqueue_batch');
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await ledgerDrained(server.dbUrl);
  const perJob = (s: number) => Math.round((s * 1e6) / JOBS);
  const result = {
    jobs: JOBS,
    producers: PRODUCERS,
    jobs_per_second: Math.round(JOBS / seconds),
    cpu_us_per_job: {
      server: perJob(cpuSeconds(server.pid) - cpu.server),
      postgres: perJob(postgresCpuSeconds() - cpu.postgres),
    },
    http_errors: http.errors(),
  };
  http.close();
  console.log(`machine: ${machine()}`);
  console.log(JSON.stringify(result));
} finally {
  await server.close();
}
