// The queue benchmark's reference: graphile-worker draining JOBS no-op jobs in-process on
// the same PostgreSQL (concurrency 24), unbatched or in its batched mode (local queue +
// batched completions). Prints one JSON line. Run by bench/queue.ts.
import { makeWorkerUtils, run } from 'graphile-worker';

const url = process.env.BENCH_GW_URL!;
const jobs = Number(process.env.JOBS ?? 20_000);
const batched = process.env.BATCHED === '1';

const utils = await makeWorkerUtils({ connectionString: url });
await utils.migrate();
for (let i = 0; i < jobs; i += 1000) {
  await utils.addJobs(Array.from({ length: Math.min(1000, jobs - i) }, () => ({ identifier: 'noop', payload: {} })));
}
await utils.release();

let done = 0;
let finish!: () => void;
const allDone = new Promise<void>((resolve) => (finish = resolve));
const started = performance.now();
const runner = await run({
  connectionString: url,
  concurrency: 24,
  noHandleSignals: true,
  pollInterval: 1000,
  taskList: {
    noop: async () => {
      if (++done === jobs) finish();
    },
  },
  preset: batched ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 } } : {},
});
await allDone;
const seconds = (performance.now() - started) / 1000;
await runner.stop();
console.log(JSON.stringify({ batched, jobs, seconds, jobs_per_second: jobs / seconds }));
process.exit(0);
